"""Pairwise preference sets with human (or correctness) labels, each in its official schema.

Every loader yields :class:`PairItem`; labels are normalised to ``"A"`` (the first
response is better), ``"B"`` or ``"tie"``. Where a set has several annotators, their
individual labels are kept in ``votes`` so the human-human ceiling can be measured.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from judgegap.data.io import read_json, read_records, require
from judgegap.data.registry import DatasetSpec, register_dataset

LABELS = ("A", "B", "tie")


@dataclass(frozen=True)
class PairItem:
    """One pairwise comparison: which of two responses to an instruction is better."""

    id: str
    dataset: str
    instruction: str
    response_a: str
    response_b: str
    label: str  # "A", "B" or "tie": the reference (human majority, expert or correctness label)
    input: str = ""
    votes: tuple[str, ...] = ()  # per-annotator labels where the set has several
    models: tuple[str, str] | None = None  # source models of response A and B, where known
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["votes"] = list(self.votes)
        d["models"] = list(self.models) if self.models else None
        return d

    @property
    def stratum(self) -> str:
        """Stratified sampling keeps the label mix (and the sub-set where there is one)."""
        return f"{self.metadata.get('subset', '')}:{self.label}"


def majority(votes: list[str]) -> str:
    """Majority of annotator labels; no strict majority counts as a tie."""
    top = Counter(votes).most_common()
    if len(top) > 1 and top[0][1] == top[1][1]:
        return "tie"
    return top[0][0]


def _text(v: Any) -> str:
    # PandaLM stores a few one-word responses ("True"/"False") as JSON booleans
    if isinstance(v, bool):
        return "True" if v else "False"
    return "" if v is None else str(v)


def parse_llmbar(path: Path, dataset: str = "llmbar") -> list[PairItem]:
    """LLMBar ``dataset.json``: ``[{input, output_1, output_2, label: 1|2}]``."""
    recs = read_records(path)
    subset = "/".join(path.parent.parts[-2:]) if path.parent.name else ""
    items = []
    for i, r in enumerate(recs):
        require(isinstance(r, dict) and {"input", "output_1", "output_2", "label"} <= r.keys(), path,
                f"record {i} needs input, output_1, output_2, label")
        require(r["label"] in (1, 2), path, f"record {i}: label must be 1 or 2, got {r['label']!r}")
        items.append(PairItem(id=f"{i}", dataset=dataset, instruction=_text(r["input"]),
                              response_a=_text(r["output_1"]), response_b=_text(r["output_2"]),
                              label="A" if r["label"] == 1 else "B", metadata={"subset": subset}))
    return items


def parse_llmbar_dir(path: Path, dataset: str = "llmbar-adversarial") -> list[PairItem]:
    """All ``*/dataset.json`` files next to ``path`` (LLMBar's four adversarial subsets)."""
    files = sorted(path.parent.parent.glob("*/dataset.json"))
    items = []
    for f in files:
        for it in parse_llmbar(f, dataset):
            items.append(PairItem(**{**it.__dict__, "id": f"{f.parent.name}-{it.id}"}))
    return items


_AUTOJ = {0: "A", 1: "B", 2: "tie"}


def parse_autoj(path: Path, dataset: str = "autoj-eval-p") -> list[PairItem]:
    """Auto-J Eval-P: ``{scenario, prompt, response 1, response 2, label: 0|1|2 (2 = tie)}``."""
    items = []
    for i, r in enumerate(read_records(path)):
        require({"prompt", "response 1", "response 2", "label"} <= r.keys(), path,
                f"record {i} needs prompt, 'response 1', 'response 2', label")
        lab = int(r["label"]) if str(r["label"]).lstrip("-").isdigit() else None
        require(lab in _AUTOJ, path, f"record {i}: label must be 0, 1 or 2, got {r['label']!r}")
        items.append(PairItem(id=str(i), dataset=dataset, instruction=_text(r["prompt"]),
                              response_a=_text(r["response 1"]).strip(), response_b=_text(r["response 2"]).strip(),
                              label=_AUTOJ[lab], metadata={"subset": r.get("scenario", "")}))
    return items


_PANDA = {1: "A", 2: "B", 0: "tie"}


def parse_pandalm(path: Path, dataset: str = "pandalm") -> list[PairItem]:
    """PandaLM ``testset-v1.json``: three annotators each, 1 / 2 = response, 0 = tie."""
    data = read_json(path)
    require(isinstance(data, list), path, "expected a JSON list")
    items = []
    for i, r in enumerate(data):
        need = {"idx", "instruction", "input", "response1", "response2", "annotator1", "annotator2", "annotator3"}
        require(isinstance(r, dict) and need <= r.keys(), path, f"record {i} lacks {sorted(need - set(r))}")
        votes = []
        for k in ("annotator1", "annotator2", "annotator3"):
            require(r[k] in _PANDA, path, f"record {i}: {k} must be 0, 1 or 2, got {r[k]!r}")
            votes.append(_PANDA[r[k]])
        a, b = (str(r.get("cmp_key", "")).split("_", 1) + [""])[:2]
        items.append(PairItem(id=str(r["idx"]), dataset=dataset, instruction=_text(r["instruction"]),
                              input=_text(r["input"]), response_a=_text(r["response1"]),
                              response_b=_text(r["response2"]), label=majority(votes), votes=tuple(votes),
                              models=(a, b) if a and b else None,
                              metadata={"subset": r.get("motivation_app", "")}))
    return items


def parse_judgebench(path: Path, dataset: str = "judgebench") -> list[PairItem]:
    """JudgeBench: ``{pair_id, question, response_A, response_B, label: 'A>B'|'B>A'}`` (correctness)."""
    items = []
    for i, r in enumerate(read_records(path)):
        require({"pair_id", "question", "response_A", "response_B", "label"} <= r.keys(), path,
                f"record {i} needs pair_id, question, response_A, response_B, label")
        require(r["label"] in ("A>B", "B>A"), path, f"record {i}: label must be 'A>B' or 'B>A'")
        m = r.get("response_model", "")
        items.append(PairItem(id=str(r["pair_id"]), dataset=dataset, instruction=_text(r["question"]),
                              response_a=_text(r["response_A"]), response_b=_text(r["response_B"]),
                              label="A" if r["label"] == "A>B" else "B", models=(m, m) if m else None,
                              metadata={"subset": str(r.get("source", "")).split("-")[0]}))
    return items


def _pairs(name: str, description: str, filenames: tuple[str, ...], parse, url: str | None = None,
           citation: str = "") -> None:
    register_dataset(DatasetSpec(name=name, description=description, filenames=filenames,
                                 parse=lambda p, _n=name, _f=parse: _f(p, _n), metric="pairwise",
                                 kind="pairs", url=url, citation=citation))


_LLMBAR = "https://raw.githubusercontent.com/princeton-nlp/LLMBar/main/Dataset/"
_pairs("llmbar-natural", "LLMBar Natural: 100 expert-labelled instruction-following pairs",
       ("LLMBar/Natural/dataset.json",), parse_llmbar, _LLMBAR + "LLMBar/Natural/dataset.json",
       "Zeng et al. 2024, Evaluating Large Language Models at Evaluating Instruction Following")
_pairs("llmbar-adversarial", "LLMBar Adversarial (Neighbor, GPTInst, GPTOut, Manual): 319 pairs",
       ("LLMBar/Adversarial/Neighbor/dataset.json",), parse_llmbar_dir, None, "Zeng et al. 2024")
for _sub in ("Neighbor", "GPTInst", "GPTOut", "Manual"):
    _pairs(f"llmbar-adversarial-{_sub.lower()}", f"LLMBar Adversarial/{_sub}",
           (f"LLMBar/Adversarial/{_sub}/dataset.json",), parse_llmbar,
           _LLMBAR + f"LLMBar/Adversarial/{_sub}/dataset.json", "Zeng et al. 2024")
_pairs("llmbar-mtbench", "MT-Bench human expert majority (LLMBar-processed, 200 pairs, no ties)",
       ("Processed/MT-Bench/dataset.json",), parse_llmbar, _LLMBAR + "Processed/MT-Bench/dataset.json",
       "Zheng et al. 2023 (MT-Bench human judgments), processed by Zeng et al. 2024")
_pairs("llmbar-faireval", "FairEval (LLMBar-processed, 66 pairs)", ("Processed/FairEval/dataset.json",),
       parse_llmbar, _LLMBAR + "Processed/FairEval/dataset.json", "Wang et al. 2023, processed by Zeng et al.")
_pairs("llmbar-llmeval2", "LLMEval^2 (LLMBar-processed, 200 pairs)",
       ("Processed/LLMEval2/dataset.json", "Processed/LLMEval^2/dataset.json"), parse_llmbar,
       _LLMBAR + "Processed/LLMEval%5E2/dataset.json", "Zhang et al. 2023, processed by Zeng et al.")
_pairs("autoj-eval-p", "Auto-J Eval-P: 1,392 human-labelled pairs over 58 scenarios (373 ties)",
       ("testdata_pairwise.jsonl",), parse_autoj,
       "https://raw.githubusercontent.com/GAIR-NLP/auto-j/main/data/test/testdata_pairwise.jsonl",
       "Li et al. 2023, Generative Judge for Evaluating Alignment")
_pairs("pandalm", "PandaLM test set: 999 pairs, three human annotators each (ties allowed)",
       ("testset-v1.json",), parse_pandalm,
       "https://raw.githubusercontent.com/WeOpenML/PandaLM/main/data/testset-v1.json",
       "Wang et al. 2023, PandaLM")
_pairs("judgebench", "JudgeBench (GPT-4o responses): 350 pairs, one response objectively correct",
       ("dataset=judgebench,response_model=gpt-4o-2024-05-13.jsonl",), parse_judgebench,
       "https://raw.githubusercontent.com/ScalerLab/JudgeBench/main/data/"
       "dataset=judgebench,response_model=gpt-4o-2024-05-13.jsonl", "Tan et al. 2024, JudgeBench")
_pairs("judgebench-claude", "JudgeBench (Claude-3.5-Sonnet responses): 270 pairs",
       ("dataset=judgebench,response_model=claude-3-5-sonnet-20240620.jsonl",), parse_judgebench,
       None, "Tan et al. 2024")
