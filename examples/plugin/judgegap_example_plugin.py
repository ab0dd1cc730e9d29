"""An example judgegap plugin: one dataset and one experiment, registered from outside judgegap.

Use it with ``plugins: [judgegap_example_plugin]`` (on PYTHONPATH) or
``judgegap run CONFIG --include examples/plugin/judgegap_example_plugin.py``; see
docs/extending.md. It is run end to end by tests/test_core_api.py.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

import judgegap as jg
from judgegap.data.io import read_records
from judgegap.data.registry import DatasetSpec, register_dataset
from judgegap.data.types import QAItem
from judgegap.experiments.base import answer_requests, with_progress
from judgegap.experiments.candidates import clean_answer
from judgegap.metrics.bootstrap import mean_ci
from judgegap.metrics.qa import score_item
from judgegap.prompts import PROMPTS

# -- a dataset: {"id", "passage", "question", "answer"} per JSON line, scored with SQuAD's metric ----------


def parse_tiny_facts(path: Path) -> list[QAItem]:
    items = []
    for i, rec in enumerate(read_records(path)):
        items.append(QAItem(id=str(rec["id"]), dataset="tiny-facts", context=rec["passage"],
                            question=rec["question"], answers=(rec["answer"],), answerable=True,
                            metadata={"question_type": rec.get("kind", "")}))
    return items


register_dataset(DatasetSpec(name="tiny-facts", description="example plugin dataset: one-sentence facts",
                             filenames=("tiny_facts.jsonl",), parse=parse_tiny_facts, metric="squad2"))


# -- an experiment: how long are a model's answers, and are long answers less often right? -------------


class AnswerLengthParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    f1_threshold: float = Field(default=0.5, gt=0, le=1)


@jg.register_experiment("answer_length")
class AnswerLength(jg.ExperimentBase):
    name = "answer_length"
    Params = AnswerLengthParams
    dataset_kinds = ("qa",)

    @staticmethod
    def needs(p: AnswerLengthParams) -> tuple[str, ...]:
        return ("generate",)

    def run(self, ctx: jg.RunContext, params: dict[str, Any]) -> None:
        p = AnswerLengthParams.model_validate(params)
        tmpl = PROMPTS.get("qa_generate")
        for ds, items in ctx.datasets_of_kind("qa").items():
            metric = ctx.dataset_metrics[ds]
            for m in ctx.config.models:
                be = ctx.backend(m.name)
                reqs = answer_requests(m, tmpl, items, any(not it.answerable for it in items))
                comps = with_progress(ctx, f"{ds} · {m.name} · answer", len(reqs), be, lambda: be.generate(reqs))
                recs = []
                for it, c in zip(items, comps):
                    pred = clean_answer(c.text)
                    _, f1 = score_item(metric, pred, it)
                    recs.append((f"{ds}|{m.name}|{it.id}", {"dataset": ds, "model": m.name, "item_id": it.id,
                                                            "n_words": len(pred.split()),
                                                            "correct": int(f1 >= p.f1_threshold)}))
                ctx.store.put_records(self.name, "answer", recs)

    def summarize(self, store: Any, config: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        by: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for r in store.records(self.name, "answer"):
            by[(r["dataset"], r["model"])].append(r)
        out: dict[str, Any] = {"datasets": {}}
        kw = {"n_resamples": config.get("bootstrap_resamples", 1000), "seed": config.get("seed", 0)}
        for (ds, m), rs in sorted(by.items()):
            words = np.array([r["n_words"] for r in rs], float)
            out["datasets"].setdefault(ds, {})[m] = {
                "n_items": len(rs), "mean_words": mean_ci(words, **kw).to_dict(),
                "accuracy": mean_ci(np.array([r["correct"] for r in rs], float), **kw).to_dict()}
        return out
