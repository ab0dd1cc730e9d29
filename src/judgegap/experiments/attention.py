"""The mechanism (seed 000): where does the model look when it generates vs when it judges?

For every item the model answers (greedy, the asymmetry generate prompt, so a run with
both experiments reuses the cached answers), then:

* **generate mode** — the sequence prompt + answer is run once with eager attention; the
  queries are the positions that *produced* answer tokens (the last prompt position and
  every answer token but the last). The candidate-answer span is the answer generated so
  far (causal attention cannot see later answer tokens).
* **judge mode** — the judge prompt with that answer as the candidate; the query is the
  verdict position (the last token, which predicts " Yes" / " No").

Attention mass from the queries is summed over each token span — context passage,
question, candidate answer, template (instructions, chat markup) and rest (tokens
without text, e.g. BOS) — per layer and head, averaged over query positions. Spans come
from the template's field positions and the tokenizer's offset mapping
(``prompts.spans``), never from searching the text. One item at a time; each layer's
weights are reduced as soon as they exist, so memory stays flat.
"""

from __future__ import annotations

import resource
from collections import defaultdict
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from judgegap.errors import ConfigError
from judgegap.experiments.asymmetry import p_correct
from judgegap.metrics.bootstrap import settings as bootstrap_settings
from judgegap.experiments import summaries
from judgegap.experiments.base import (EXPERIMENTS, ExperimentBase, RunContext, model_answers, parse_experiment_params,
                                       with_progress)
from judgegap.experiments.candidates import clean_answer, display_answer
from judgegap.metrics.bootstrap import bootstrap_indices, mean_ci
from judgegap.metrics.calibration import est_dict
from judgegap.metrics.qa import score_item
from judgegap.prompts import JUDGE_CHOICES, PROMPTS
from judgegap.prompts.spans import SPANS, prompt_char_spans, render_with_spans, token_labels
from judgegap.store import Store

NAME = "attention"
FIELDS = ("context", "question", "candidate")
SEED_RANGE = (3.0, 5.0)  # seed 000: judges attend 3-5x less to context and candidate


class AttentionParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    f1_threshold: float = Field(default=0.5, gt=0.0, le=1.0)
    generate_template: str = "qa_generate"
    judge_template: str = "qa_judge"
    max_tokens: int = Field(default=4096, ge=64, description="skip items whose judge prompt is longer")
    max_items: int | None = Field(default=None, ge=1, description="attention on the first N items of each dataset")


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@EXPERIMENTS.register(NAME)
class Attention(ExperimentBase):
    name = NAME
    Summary = summaries.AttentionSummary
    report_section = "judgegap.report.sections:attention"
    Params = AttentionParams
    dataset_kinds = ("qa",)

    @staticmethod
    def needs(p: AttentionParams) -> tuple[str, ...]:
        return ("generate", "attention")

    def run(self, ctx: RunContext, params: dict[str, Any]) -> None:
        p = parse_experiment_params(AttentionParams, NAME, params)
        gen_t, judge_t = PROMPTS.get(p.generate_template), PROMPTS.get(p.judge_template)
        qa = ctx.datasets_of_kind("qa")
        if not qa:
            raise ConfigError(f"experiment {NAME} needs a QA dataset")
        for ds, all_items in qa.items():
            metric = ctx.dataset_metrics[ds]
            unans = any(not it.answerable for it in all_items)
            items = all_items[: p.max_items] if p.max_items else all_items
            for mc in ctx.config.models:
                be = ctx.backend(mc.name)
                hf = be.backend
                comps = model_answers(ctx, mc, gen_t, items, unans, ds, f"{ds} · {mc.name} · answer")
                preds = [clean_answer(c.text) for c in comps]
                judge_prompts = [judge_t.render(context=it.context, question=it.question,
                                                candidate=display_answer(pr), allow_unanswerable=unans)
                                 for it, pr in zip(items, preds)]
                verdicts = with_progress(ctx, f"{ds} · {mc.name} · verdict", len(items), be,
                                         lambda: be.score_choices(judge_prompts, list(JUDGE_CHOICES)))
                done = {r["item_id"] for r in ctx.store.records(NAME, "item") if r["dataset"] == ds
                        and r["model"] == mc.name}
                task = ctx.progress.add_task(f"{ds} · {mc.name} · attention", total=len(items)) if ctx.progress else None
                for k, it in enumerate(items):
                    if it.id not in done:
                        rec = self._item(hf, gen_t, judge_t, it, comps[k].text, preds[k], unans, p)
                        if rec is None:  # judge prompt longer than max_tokens: counted, not dropped silently
                            ctx.store.put_records(NAME, "skipped", [(f"{ds}|{mc.name}|{it.id}", {
                                "dataset": ds, "model": mc.name, "item_id": it.id,
                                "reason": f"judge prompt longer than max_tokens={p.max_tokens}"})])
                        else:
                            em, f1 = score_item(metric, preds[k], it)
                            correct = int(f1 >= p.f1_threshold)
                            pc, _ = p_correct(*verdicts[k])
                            rec.update(dataset=ds, item_id=it.id, model=mc.name, answer=preds[k], f1=f1,
                                       correct=correct, p_correct=pc, verdict_correct=int((pc >= 0.5) == bool(correct)),
                                       peak_rss_mib=peak_rss_mib())
                            ctx.store.put_records(NAME, "item", [(f"{ds}|{mc.name}|{it.id}", rec)])
                    if task is not None:
                        ctx.progress.advance(task, 1)

    @staticmethod
    def _item(hf, gen_t, judge_t, it, raw_answer: str, pred: str, unans: bool, p: AttentionParams) -> dict | None:
        # generate mode: prompt + the answer as the model produced it
        gp, gspans = render_with_spans(gen_t, FIELDS, context=it.context, question=it.question,
                                       allow_unanswerable=unans)
        gtext = hf.render(gp)
        answer = " " + raw_answer.strip() if raw_answer.strip() else ""
        full = gtext + answer
        cs = prompt_char_spans(full, gp, gspans)
        if answer:
            cs["candidate"] = [(len(gtext), len(full))]
        ids, offs = hf.encode_with_offsets(full)
        lab = _with_sink(token_labels(offs, cs))
        cand = np.where(lab == SPANS.index("candidate"))[0]
        n_prompt = int(cand[0]) if len(cand) else len(ids)
        queries = list(range(n_prompt - 1, len(ids) - 1)) if len(cand) else [len(ids) - 1]
        # judge mode: the verdict position
        jp, jspans = render_with_spans(judge_t, FIELDS, context=it.context, question=it.question,
                                       candidate=display_answer(pred), allow_unanswerable=unans)
        jtext = hf.render(jp)
        jids, joffs = hf.encode_with_offsets(jtext)
        if len(jids) > p.max_tokens:
            return None
        jlab = _with_sink(token_labels(joffs, prompt_char_spans(jtext, jp, jspans)))
        mg = hf.span_attention(ids, lab, len(SPANS), queries)
        mj = hf.span_attention(jids, jlab, len(SPANS), [len(jids) - 1])
        count = lambda labels: {s: int((labels == k).sum()) for k, s in enumerate(SPANS)}  # noqa: E731
        return {"generate": np.round(mg, 6).tolist(), "judge": np.round(mj, 6).tolist(),
                "n_queries_generate": len(queries), "tokens_generate": count(lab), "tokens_judge": count(jlab),
                "n_layers": int(mg.shape[0]), "n_heads": int(mg.shape[1])}

    def summarize(self, store: Store, config: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        kw = bootstrap_settings(config)
        out = summarize_attention(store.records(NAME, "item"), kw)
        skipped: dict[str, int] = defaultdict(int)
        for r in store.records(NAME, "skipped"):
            skipped[f"{r['dataset']} · {r['model']}"] += 1
        out["n_skipped"] = dict(skipped)  # items whose judge prompt exceeded max_tokens
        return out


def _with_sink(labels: np.ndarray) -> np.ndarray:
    """The first token is an attention sink (it takes most of many heads' mass whatever it is): 'rest'."""
    labels[0] = SPANS.index("rest")
    return labels


def _ratio(a: np.ndarray, b: np.ndarray, kw: dict[str, Any]) -> dict[str, Any]:
    """mean(a) / mean(b) over items, bootstrap CI (items resampled together)."""
    return bootstrap_indices(lambda i: float(a[i].mean() / b[i].mean()) if b[i].mean() > 0 else float("nan"),
                             len(a), **kw).to_dict()


def summarize_attention(recs: list[dict[str, Any]], kw: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"experiment": NAME, "spans": list(SPANS), "seed_claim": "judges attend 3-5x less to"
                           " context and candidate answer (seed 000)", "span_definitions": {
                               "context": "the passage tokens (field position from the template, offset mapping)",
                               "question": "the question tokens",
                               "candidate": "judge mode: the candidate answer field; generate mode: the answer"
                                            " tokens generated so far",
                               "template": "instructions, labels and chat-template markup",
                               "rest": "the first token (an attention sink, whatever it is) and tokens without"
                                       " text (BOS / special tokens added by the tokenizer)"},
           "datasets": {}}
    by: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in recs:
        by[(r["dataset"], r["model"])].append(r)
    for (ds, m), rs in sorted(by.items()):
        G = np.array([r["generate"] for r in rs])  # items x layers x heads x spans
        J = np.array([r["judge"] for r in rs])
        g_item, j_item = G.mean((1, 2)), J.mean((1, 2))  # items x spans
        res: dict[str, Any] = {"n_items": len(rs), "n_layers": int(G.shape[1]), "n_heads": int(G.shape[2]),
                               "peak_rss_mib": max(r.get("peak_rss_mib", 0) for r in rs), "spans": {}}
        for k, s in enumerate(SPANS):
            tg = np.array([max(r["tokens_generate"][s], 0) for r in rs], float)
            tj = np.array([max(r["tokens_judge"][s], 0) for r in rs], float)
            span = {"generate": mean_ci(g_item[:, k], **kw), "judge": mean_ci(j_item[:, k], **kw),
                    "ratio_generate_over_judge": _ratio(g_item[:, k], j_item[:, k], kw),
                    "mean_tokens_generate": float(tg.mean()), "mean_tokens_judge": float(tj.mean())}
            dens_g = np.where(tg > 0, g_item[:, k] / np.maximum(tg, 1), np.nan)
            dens_j = np.where(tj > 0, j_item[:, k] / np.maximum(tj, 1), np.nan)
            ok = ~(np.isnan(dens_g) | np.isnan(dens_j))
            if ok.sum() >= 2:
                span["per_token_ratio"] = _ratio(dens_g[ok], dens_j[ok], kw)
            res["spans"][s] = span
        for split in ("correct", "verdict_correct"):
            res[f"by_{split}"] = {}
            for val in (0, 1):
                ix = np.array([r[split] == val for r in rs])
                if ix.sum() >= 2:
                    res[f"by_{split}"][str(val)] = {s: {"n": int(ix.sum()), "ratio": _ratio(
                        g_item[ix, k], j_item[ix, k], kw)} for k, s in enumerate(SPANS) if s in ("context", "candidate")}
        res["by_depth"] = _by_depth(G, J, kw)
        res["heads"] = _head_ratios(G, J, kw)
        res["per_layer"] = {"generate": G.mean((0, 2)).tolist(), "judge": J.mean((0, 2)).tolist()}  # layers x spans
        res["per_head"] = {"generate": G.mean(0).tolist(), "judge": J.mean(0).tolist()}  # layers x heads x spans
        res["agreement_with_seed"] = {s: _seed_agreement(res["spans"][s]["ratio_generate_over_judge"])
                                      for s in ("context", "candidate")}
        out["datasets"].setdefault(ds, {})[m] = res
    return est_dict(out)


KEY_SPANS = ("context", "candidate")


def _by_depth(G: np.ndarray, J: np.ndarray, kw: dict[str, Any]) -> dict[str, Any]:
    """The ratio in the lower and upper half of the layers: a whole-model mean can hide a drop
    that happens only in the layers nearer the output."""
    h = G.shape[1] // 2
    out: dict[str, Any] = {}
    for name, sl in (("lower_half", slice(0, h)), ("upper_half", slice(h, None))):
        g, j = G[:, sl].mean((1, 2)), J[:, sl].mean((1, 2))
        layers = range(G.shape[1])[sl]
        out[name] = {"layers": f"{layers[0]}-{layers[-1]}",
                     **{s: _ratio(g[:, SPANS.index(s)], j[:, SPANS.index(s)], kw) for s in KEY_SPANS}}
    return out


def _head_ratios(G: np.ndarray, J: np.ndarray, kw: dict[str, Any]) -> dict[str, Any]:
    """Per-head view: the mean-over-heads ratio is dominated by the few heads with most mass
    (often sink-like heads that look at the same tokens in both modes); the median head's
    ratio and the share of heads whose mass drops say how widespread the drop is."""
    out: dict[str, Any] = {}
    for s in KEY_SPANS:
        k = SPANS.index(s)
        g, j = G[..., k].reshape(len(G), -1), J[..., k].reshape(len(J), -1)  # items x (layers*heads)
        out[s] = {"median_head_ratio": _head_stat_ci(g, j, np.median, kw),
                  "share_heads_generate_gt_judge": _head_stat_ci(g, j, lambda r: np.mean(r > 1), kw),
                  "share_heads_ratio_ge_3": _head_stat_ci(g, j, lambda r: np.mean(r >= SEED_RANGE[0]), kw),
                  "n_heads": int(g.shape[1])}
    return out


def _head_stat_ci(g: np.ndarray, j: np.ndarray, stat: Any, kw: dict[str, Any]) -> dict[str, Any]:
    """CI over items of ``stat`` applied to the per-head ratios of mean mass (items x heads in)."""
    def of_items(ix: np.ndarray) -> float:
        gm, jm = g[ix].mean(0), j[ix].mean(0)
        r = gm[jm > 0] / jm[jm > 0]
        return float(stat(r)) if r.size else float("nan")
    return bootstrap_indices(of_items, len(g), **kw).to_dict()


def _seed_agreement(r: dict[str, Any]) -> str:
    lo, hi = r.get("ci_low"), r.get("ci_high")
    if lo is None or np.isnan(lo):
        return "not enough data"
    if lo > SEED_RANGE[1]:
        return "judge attends even less than the seed's 3-5x"
    if hi < 1:
        return "opposite: the judge attends MORE than the generator"
    if hi < SEED_RANGE[0]:
        return "less of a drop than the seed's 3-5x" + (" (no significant drop)" if lo <= 1 else "")
    return "consistent with the seed's 3-5x"
