"""The asymmetry experiment: does a model judge answers better than it generates them?

For every dataset and model: (1) generate an answer from the passage alone, scored by
the official metric; (2) every judge model (the author itself included) reads passage,
question and a candidate answer and we read P(correct) from the log-probabilities of
" Yes" / " No" in one forward pass, plus (optionally) a short greedy text verdict; the
candidates are every model's answers and a balanced gold/wrong-span pair per item.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from judgegap.backends.base import GenRequest
from judgegap.errors import ConfigError
from judgegap.experiments import summaries
from judgegap.experiments.base import (EXPERIMENTS, ExperimentBase, RunContext, all_judges, answer_requests,
                                       check_all_judges, item_order_wanted, other_models_answers,
                                       model_answers, parse_experiment_params, with_progress)
from judgegap.experiments.candidates import balanced_candidates, clean_answer, display_answer
from judgegap.metrics.bootstrap import Estimate, bootstrap_indices, mean_ci, paired_diff_ci
from judgegap.metrics.bootstrap import settings as bootstrap_settings
from judgegap.metrics.calibration import spearman
from judgegap.metrics.judging import auroc, balanced_accuracy, judge_report
from judgegap.metrics.qa import score_item
from judgegap.prompts import JUDGE_CHOICES, PROMPTS, masked_judge_template
from judgegap.store import Store
from judgegap.store.records import Generation, Judgment

NAME = "asymmetry"


class AsymmetryParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    f1_threshold: float = Field(default=0.5, gt=0.0, le=1.0)
    judges: Literal["all", "self"] | list[str] = "all"
    balanced_candidates: bool = True
    text_verdict: bool = True
    generate_template: str = "qa_generate"
    judge_template: str = "qa_judge"
    ablations: list[Literal["c_mask", "c_swap"]] = Field(
        default_factory=list, description="seed 000's probes: c_mask judges each item with its candidate withheld"
        " (how much the verdict depends on the answer at all); c_swap compares the verdict on the model's own"
        " correct answer with that on the item's plausible wrong span (the balanced set's, no extra calls)")
    order: Literal["auto", "model", "item"] = Field(
        default="auto", description="call order: 'item' runs each item's answer and its own judgements back to"
        " back (a KV-prefix cache then evaluates the passage once per item); 'model' batches each phase over all"
        " items (best for batched GPUs); 'auto' = item for backends with a sequential prefix cache (llamacpp)")


def parse_params(params: dict[str, Any]) -> AsymmetryParams:
    return parse_experiment_params(AsymmetryParams, NAME, params)


_YES = re.compile(r"\b(yes|correct|true|right)\b", re.I)
_NO = re.compile(r"\b(no|incorrect|false|wrong|not correct)\b", re.I)


def parse_verdict(text: str) -> int | None:
    """1 (correct), 0 (incorrect) or None when the reply is empty or says both."""
    t = text.strip()
    yes, no = bool(_YES.search(t)), bool(_NO.search(t))
    if yes and not no:
        return 1
    if no and not yes:
        return 0
    if yes and no:  # "No, it is not correct" contains both 'no' and 'correct': take the first word
        first = re.match(r"\W*(\w+)", t)
        w = first.group(1).lower() if first else ""
        if w in ("yes", "correct", "true", "right"):
            return 1
        if w in ("no", "incorrect", "false", "wrong"):
            return 0
    return None


def judge_prompt(judge_t: Any, item: Any, candidate: str, allow_unanswerable: bool) -> Any:
    """The judge prompt for one candidate (one place, so every pass builds identical requests)."""
    return judge_t.render(context=item.context, question=item.question, candidate=candidate,
                          allow_unanswerable=allow_unanswerable)


def p_correct(lp_yes: float, lp_no: float) -> tuple[float, float]:
    """P(correct) renormalised over the two verdict tokens, and their total mass."""
    m = max(lp_yes, lp_no)
    if m == -math.inf:
        return 0.5, 0.0
    a, b = math.exp(lp_yes - m), math.exp(lp_no - m)
    return a / (a + b), math.exp(m) * (a + b)


@EXPERIMENTS.register(NAME)
class Asymmetry(ExperimentBase):
    name = NAME
    Summary = summaries.AsymmetrySummary
    report_section = "judgegap.report.sections:asymmetry"
    Params = AsymmetryParams
    dataset_kinds = ("qa",)

    @staticmethod
    def needs(p: AsymmetryParams) -> tuple[str, ...]:
        return ("generate", "score_choices")

    @staticmethod
    def models_used(p: AsymmetryParams, model_names: list[str]) -> dict[str, list[str]]:
        if p.judges == "self":
            return {"models": model_names, "self_judges": model_names}
        return {"models": model_names, "judges": list(p.judges) if isinstance(p.judges, list) else []}

    @staticmethod
    def role_needs(p: AsymmetryParams) -> dict[str, tuple[str, ...]]:
        # authors answer (a backend or an answers file); judges read verdict log-probabilities
        return {"models": ("generate",), "judges": ("score_choices",), "self_judges": ("score_choices",)}

    @staticmethod
    def check(p: AsymmetryParams, cfg: Any) -> None:
        if p.judges == "all":
            check_all_judges(cfg, ("score_choices",))
        if "c_swap" in p.ablations and not p.balanced_candidates:
            raise ValueError("params.ablations: c_swap reads the balanced set's wrong span; set balanced_candidates:"
                             " true")
        if "c_mask" in p.ablations:
            masked_judge_template(p.judge_template)

    def run(self, ctx: RunContext, params: dict[str, Any]) -> None:
        p = parse_params(params)
        gen_t, judge_t = PROMPTS.get(p.generate_template), PROMPTS.get(p.judge_template)
        models = ctx.config.models
        judges = judge_names(p, ctx.config)
        unknown = [j for j in judges if j not in {m.name for m in models}]
        if unknown:
            raise ConfigError(f"experiments.asymmetry.params.judges: unknown model(s) {', '.join(unknown)}")
        for ds_name, items in ctx.datasets_of_kind("qa").items():
            metric = ctx.dataset_metrics[ds_name]
            allow_unans = any(not it.answerable for it in items)
            answers: dict[str, dict[str, str]] = {}
            cands = balanced_candidates(items, metric, p.f1_threshold, ctx.config.seed,
                                        pool=ctx.pools.get(ds_name, items)) if p.balanced_candidates else {}
            # 1. generate
            for m in models:
                comps = model_answers(ctx, m, gen_t, items, allow_unans, ds_name, f"{ds_name} · {m.name} · generate")
                recs = []
                answers[m.name] = {}
                for it, c in zip(items, comps):
                    pred = clean_answer(c.text)
                    em, f1 = score_item(metric, pred, it)
                    answers[m.name][it.id] = pred
                    recs.append((f"{ds_name}|{m.name}|{it.id}", Generation(**{
                        "dataset": ds_name, "item_id": it.id, "model": m.name, "role": "generate",
                        "raw_text": c.text, "prediction": pred, "em": em, "f1": f1,
                        "correct": int(f1 >= p.f1_threshold), "n_tokens": c.n_tokens,
                        "answerable": it.answerable, "question": it.question, "context": it.context,
                        "gold": " | ".join(it.answers) if it.answerable else "(unanswerable)",
                        "question_type": str(it.metadata.get("question_type", "")),
                        "hops": it.metadata.get("hops"),
                        "template": "file" if c.finish_reason == "file" else gen_t.id,
                    })))
                ctx.store.put_records(NAME, "generation", recs)
            # 2. judge: every judge on every author's answers (+ balanced gold / wrong-span pair)

            judging = judges or [m.name for m in models]
            for jname in judging:
                authors = [m.name for m in models] if p.judges != "self" else [jname]
                rows: list[dict[str, Any]] = []
                for it in items:
                    for a in authors:
                        pred = answers[a][it.id]
                        rows.append({"item": it, "author": a, "candidate": display_answer(pred), "pred": pred})
                    for kind, text in cands.get(it.id, []):
                        pred = clean_answer(text)
                        rows.append({"item": it, "author": kind, "candidate": display_answer(pred), "pred": pred})
                prompts = [judge_prompt(judge_t, r["item"], r["candidate"], allow_unans) for r in rows]
                be = ctx.backend(jname)
                lps = with_progress(ctx, f"{ds_name} · {jname} · judge (log-prob)", len(prompts), be,
                                          lambda: be.score_choices(prompts, list(JUDGE_CHOICES)))
                texts: list[str | None] = [None] * len(rows)
                if p.text_verdict:  # second mode, on the judge's own answers: a short greedy reply
                    own = [k for k, r in enumerate(rows) if r["author"] == jname]
                    reqs = [GenRequest(prompts[k], max_new_tokens=4, temperature=0.0, stop=("\n",)) for k in own]
                    comps = with_progress(ctx, f"{ds_name} · {jname} · self-judge (text)", len(reqs), be,
                                                lambda: be.generate(reqs))
                    for k, c in zip(own, comps):
                        texts[k] = c.text
                recs = []
                for r, lp, txt in zip(rows, lps, texts):
                    it = r["item"]
                    em, f1 = score_item(metric, r["pred"], it)
                    pc, mass = p_correct(lp[0], lp[1])
                    recs.append((f"{ds_name}|{jname}|{r['author']}|{it.id}", Judgment(**{
                        "dataset": ds_name, "item_id": it.id, "judge": jname, "author": r["author"],
                        "role": "self_judge" if r["author"] == jname else "judge",
                        "candidate": r["candidate"], "label": int(f1 >= p.f1_threshold), "label_f1": f1,
                        "lp_yes": lp[0], "lp_no": lp[1], "p_correct": pc, "verdict_mass": mass,
                        "text_reply": txt, "text_verdict": parse_verdict(txt) if txt is not None else None,
                        "template": judge_t.id,
                    })))
                ctx.store.put_records(NAME, "judgment", recs)
                if "c_mask" in p.ablations:
                    self._c_mask(ctx, p, ds_name, jname, items, answers, judge_t, metric, allow_unans)

    @staticmethod
    def _c_mask(ctx: RunContext, p: AsymmetryParams, ds_name: str, jname: str, items: list[Any],
                answers: dict[str, dict[str, str]], judge_t: Any, metric: str, allow_unans: bool) -> None:
        """C-MASK: the judge's verdict with the candidate withheld, one call per item (labelled with
        the correctness of the judge's own answer, so it pairs with its self-judgement)."""
        masked_t = masked_judge_template(judge_t.id)
        own = answers.get(jname)
        if own is None:
            return
        prompts = [judge_prompt(masked_t, it, "", allow_unans) for it in items]
        be = ctx.backend(jname)
        lps = with_progress(ctx, f"{ds_name} · {jname} · C-MASK (candidate withheld)", len(prompts), be,
                            lambda: be.score_choices(prompts, list(JUDGE_CHOICES)))
        recs = []
        for it, lp in zip(items, lps):
            em, f1 = score_item(metric, own[it.id], it)
            pc, mass = p_correct(lp[0], lp[1])
            recs.append((f"{ds_name}|{jname}|c_mask|{it.id}", Judgment(
                dataset=ds_name, item_id=it.id, judge=jname, author="c_mask", role="ablation", candidate="",
                label=int(f1 >= p.f1_threshold), label_f1=f1, lp_yes=lp[0], lp_no=lp[1], p_correct=pc,
                verdict_mass=mass, template=masked_t.id)))
        ctx.store.put_records(NAME, "judgment", recs)

    def item_calls(self, ctx: RunContext, params: dict[str, Any], ds_name: str, items: list[Any],
                   model_name: str) -> Callable[[Any], None] | None:
        """For a model that judges itself: item i's answer, then its judgements of that answer and of the
        item's gold / wrong-span candidates, the text verdict and the C-MASK prompt, as the main pass
        makes them."""
        p = parse_params(params)
        if not _judges_item_by_item(ctx, p, model_name):
            return None
        gen_t, judge_t = PROMPTS.get(p.generate_template), PROMPTS.get(p.judge_template)
        m = next(x for x in ctx.config.models if x.name == model_name)
        metric = ctx.dataset_metrics[ds_name]
        allow_unans = any(not it.answerable for it in items)
        cands = balanced_candidates(items, metric, p.f1_threshold, ctx.config.seed,
                                    pool=ctx.pools.get(ds_name, items)) if p.balanced_candidates else {}
        be = ctx.backend(model_name)
        aset = m.answer_set(ds_name)
        reqs = dict(zip((it.id for it in items), answer_requests(m, gen_t, items, allow_unans)))
        masked_t = masked_judge_template(judge_t.id) if "c_mask" in p.ablations else None

        def one(it: Any) -> None:
            pred = clean_answer(aset.answers[it.id] if aset is not None else be.generate([reqs[it.id]])[0].text)
            texts = [display_answer(pred)] + [display_answer(clean_answer(t)) for _, t in cands.get(it.id, [])]
            prompts = [judge_prompt(judge_t, it, t, allow_unans) for t in texts]
            be.score_choices(prompts, list(JUDGE_CHOICES))
            if p.text_verdict:
                be.generate([GenRequest(prompts[0], max_new_tokens=4, temperature=0.0, stop=("\n",))])
            if masked_t is not None:
                be.score_choices([judge_prompt(masked_t, it, "", allow_unans)], list(JUDGE_CHOICES))
        return one

    def item_cross_calls(self, ctx: RunContext, params: dict[str, Any], ds_name: str, items: list[Any],
                         model_name: str) -> Callable[[Any], None] | None:
        """For a judge that runs item by item: its judgements of the OTHER models' answers to item i, made
        after their item-i calls (their answers are then call-cache hits, or come from their answers
        files), while this judge's KV state still holds item i's passage. Authors whose answers are only
        made in the main pass (a batching backend) are left to it, so their batches stay batches."""
        p = parse_params(params)
        if p.judges == "self" or not _judges_item_by_item(ctx, p, model_name):
            return None
        gen_t, judge_t = PROMPTS.get(p.generate_template), PROMPTS.get(p.judge_template)
        allow_unans = any(not it.answerable for it in items)
        answer_of = other_models_answers(ctx, ds_name, items, model_name, gen_t, allow_unans,
                                         lambda name: _judges_item_by_item(ctx, p, name))
        if not answer_of:
            return None
        be = ctx.backend(model_name)

        def cross(it: Any) -> None:
            prompts = [judge_prompt(judge_t, it, display_answer(clean_answer(f(it))), allow_unans) for f in answer_of]
            be.score_choices(prompts, list(JUDGE_CHOICES))
        return cross

    def summarize(self, store: Store, config: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        return summarize_records(store.records(NAME, "generation"), store.records(NAME, "judgment"),
                                 parse_params(params), config.get("bootstrap_resamples", 1000),
                                 config.get("seed", 0))


def _judges_item_by_item(ctx: RunContext, p: AsymmetryParams, name: str) -> bool:
    """Whether model ``name`` judges in this asymmetry run and its calls go item by item (its answer and
    judgements of each item back to back, see :func:`item_order_wanted`)."""
    judges = judge_names(p, ctx.config)
    return name in (judges or [x.name for x in ctx.config.models]) and item_order_wanted(ctx, name, p.order)


def judge_names(p: AsymmetryParams, cfg: Any) -> list[str]:
    """The configured judges: every judging model ("all"), none beyond self-judging ("self"), or a list."""
    return all_judges(cfg) if p.judges == "all" else ([] if p.judges == "self" else list(p.judges))


def _est(e: Estimate) -> dict[str, Any]:
    return e.to_dict()


def trust_verdict(sj: dict[str, Any], n_wrong: int, n_right: int) -> dict[str, Any]:
    """The user's first question — can I trust this model's judgement of its OWN answers? —
    answered from its verdicts on its own answers (never from the easier balanced set)."""
    auroc, war = sj.get("auroc") or {}, sj.get("wrong_accept_rate") or {}
    a, lo, hi = auroc.get("value"), auroc.get("ci_low"), auroc.get("ci_high")
    w = war.get("value") if war else None
    wtxt = f"; it accepts {w * 100:.0f}% of its own wrong answers" if w is not None else ""
    if n_right == 0 or n_wrong == 0:
        which = "right" if n_wrong == 0 else "wrong"
        answer, why = "cannot tell", f"all {n_right + n_wrong} of its answers are {which}, so nothing to separate{wtxt}"
    elif a is None or lo is None or hi is None or a != a:
        answer, why = "cannot tell", f"too few answers to estimate how well it separates right from wrong{wtxt}"
    elif hi < 0.5:
        answer, why = "no", f"its verdicts rank its own answers worse than chance (AUROC {a:.2f} [{lo:.2f}, {hi:.2f}]){wtxt}"
    elif lo <= 0.5:
        answer, why = "no", f"its verdicts on its own answers are indistinguishable from chance (AUROC {a:.2f} [{lo:.2f}, {hi:.2f}]){wtxt}"
    elif a >= 0.8 and w is not None and w <= 0.2:
        answer, why = "yes", f"its verdicts separate its right from its wrong answers (AUROC {a:.2f} [{lo:.2f}, {hi:.2f}]){wtxt}"
    else:
        answer, why = "partly", f"better than chance (AUROC {a:.2f} [{lo:.2f}, {hi:.2f}]) but not reliable{wtxt}"
    return {"question": "can I trust this model's judgement of its own answers?", "answer": answer, "why": why,
            "n_wrong": n_wrong, "n_right": n_right}


def verdict_text(gap: Estimate) -> str:
    if math.isnan(gap.value) or math.isnan(gap.ci_low):
        return "not enough data"
    if gap.ci_low > 0:
        return "judges better than it generates"
    if gap.ci_high < 0:
        return "judges worse than it generates"
    return "no significant difference"


VERDICT_BASIS = ("chance-corrected: judging skill on a balanced judged set, Youden's J = TPR + TNR - 1 on each"
                 " item's gold answer and a wrong span from the passage (0 = guessing, 1 = perfect), minus"
                 " generation accuracy (F1 >= threshold; guessing an answer scores ~0), paired bootstrap 95% CI"
                 " over items")


def summarize_records(gens: list[dict[str, Any]], judg: list[dict[str, Any]], p: AsymmetryParams,
                      resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    kw = bootstrap_settings({"bootstrap_resamples": resamples, "seed": seed})
    out: dict[str, Any] = {"experiment": NAME, "f1_threshold": p.f1_threshold, "verdict_basis": VERDICT_BASIS,
                           "datasets": {}}
    by_ds: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for g in gens:
        by_ds[g["dataset"]].append(g)
    jd: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for j in judg:
        jd[j["dataset"]].append(j)
    for ds, grecs in by_ds.items():
        models = sorted({g["model"] for g in grecs})
        dsum: dict[str, Any] = {"models": {}, "matrix": {}}
        jrecs = jd.get(ds, [])
        index = {(j["judge"], j["author"], j["item_id"]): j for j in jrecs}
        for m in models:
            mg = sorted((g for g in grecs if g["model"] == m), key=lambda g: g["item_id"])
            ids = [g["item_id"] for g in mg]
            corr = np.array([g["correct"] for g in mg], dtype=float)
            msum: dict[str, Any] = {
                "n_items": len(mg),
                "generation": {
                    "em": _est(mean_ci([g["em"] for g in mg], **kw)),
                    "f1": _est(mean_ci([g["f1"] for g in mg], **kw)),
                    "accuracy": _est(mean_ci(corr, **kw)),
                },
            }
            selfj = [index.get((m, m, i)) for i in ids]
            if all(s is not None for s in selfj) and selfj:
                y = np.array([s["label"] for s in selfj])
                pc = np.array([s["p_correct"] for s in selfj])
                rep = judge_report(y, pc, **kw)
                msum["self_judge"] = {k: _est(v) for k, v in rep.items()}
                tv = [s["text_verdict"] for s in selfj]
                if any(s["text_reply"] is not None for s in selfj):
                    parsed = [(yy, t) for yy, t in zip(y, tv) if t is not None]
                    msum["self_judge_text"] = {
                        "accuracy": _est(mean_ci([float(yy == t) for yy, t in parsed], **kw)),
                        "n_parsed": len(parsed),
                        "n_unparsed": sum(t is None for t in tv),
                    }
                v = (pc >= 0.5).astype(int)
                judge_ok = (v == y).astype(float)
                msum["gap_raw"] = _est(paired_diff_ci(judge_ok, corr, **kw))
                # Youden's J on own answers (2 x balanced accuracy - 1): 0 for a judge that guesses
                gap_own = bootstrap_indices(
                    lambda i: 2 * balanced_accuracy(y[i], v[i]) - 1 - float(corr[i].mean()), len(y), **kw)
                msum["gap_own_answers_j"] = _est(gap_own)
                msum["blind_spots"] = [ids[k] for k in range(len(ids)) if corr[k] == 0 and v[k] == 1]
                wrong = y == 0
                msum["self_judge"]["wrong_accept_rate"] = _est(mean_ci(v[wrong].astype(float), **kw)) \
                    if wrong.any() else None
                msum["verdict_own_answers"] = "on its own answers: " + verdict_text(gap_own)
                msum["trust"] = trust_verdict(msum["self_judge"], int(wrong.sum()), int((~wrong).sum()))
            # balanced judged set
            pairs = []
            for k, i in enumerate(ids):
                g_, w_ = index.get((m, "gold", i)), index.get((m, "wrong_span", i))
                if g_ and w_:
                    ok = [float((r["p_correct"] >= 0.5) == bool(r["label"])) for r in (g_, w_)]
                    pairs.append((k, float(np.mean(ok)), g_, w_))
            if pairs:
                jb = np.array([x[1] for x in pairs])
                gsub = corr[[x[0] for x in pairs]]
                yb = np.array([r["label"] for x in pairs for r in (x[2], x[3])])
                pb = np.array([r["p_correct"] for x in pairs for r in (x[2], x[3])])
                brep = judge_report(yb, pb, **kw)
                msum["balanced_set"] = {"n_items": len(pairs),
                                        "label_balance": float(yb.mean()),
                                        "youden_j": _est(mean_ci(2 * jb - 1, **kw)),
                                        **{k: _est(brep[k]) for k in ("accuracy", "balanced_accuracy", "auroc",
                                                                      "brier", "tpr", "tnr")}}
                # per item: J_i = [gold accepted] + [wrong span rejected] - 1 = 2 * jb - 1, in {-1, 0, 1}
                gap = paired_diff_ci(2 * jb - 1, gsub, **kw)
                msum["gap_balanced_set"] = _est(gap)
                msum["verdict"] = verdict_text(gap)
                msum["verdict_balanced_set"] = "on a balanced gold / wrong-span set: " + verdict_text(gap)
                msum["judge_generation_correlation"] = _correlation(jb, gsub, kw)
                msum["breakdown"] = _breakdown([mg[x[0]] for x in pairs], jb, gsub, kw)
            abl = _ablations(m, ids, index, kw)
            if abl:
                msum["ablations"] = abl
            dsum["models"][m] = msum
        # judge x author matrix on model-written answers
        judges = sorted({j["judge"] for j in jrecs})
        for jn in judges:
            row = {}
            for a in models:
                rs = [j for j in jrecs if j["judge"] == jn and j["author"] == a]
                if not rs:
                    continue
                y = np.array([r["label"] for r in rs])
                pc = np.array([r["p_correct"] for r in rs])
                rep = judge_report(y, pc, **kw)
                row[a] = {k: _est(rep[k]) for k in ("accuracy", "balanced_accuracy", "auroc", "accept_rate")}
            dsum["matrix"][jn] = row
            sp = _self_preference(jn, models, jrecs, kw)
            if sp is not None and jn in dsum["models"]:
                dsum["models"][jn]["self_preference"] = sp
        out["datasets"][ds] = dsum
    return out


def _ablations(m: str, ids: list[str], index: dict[tuple[str, str, str], dict[str, Any]],
               kw: dict[str, Any]) -> dict[str, Any]:
    """C-MASK and C-SWAP verdict shifts for judge ``m`` on its own answers (paired over items)."""
    out: dict[str, Any] = {}
    rows = [(index.get((m, m, i)), index.get((m, "c_mask", i))) for i in ids]
    rows = [(o, k) for o, k in rows if o and k]
    if rows:
        po = np.array([o["p_correct"] for o, _ in rows])
        pm = np.array([k["p_correct"] for _, k in rows])
        y = np.array([o["label"] for o, _ in rows])
        out["c_mask"] = {
            "n": len(rows),
            "p_correct_own": _est(mean_ci(po, **kw)), "p_correct_masked": _est(mean_ci(pm, **kw)),
            "shift": _est(paired_diff_ci(po, pm, **kw)),
            "verdict_changed": _est(mean_ci(((po >= 0.5) != (pm >= 0.5)).astype(float), **kw)),
            "auroc_masked_vs_own_correct": _est(bootstrap_indices(lambda i: auroc(y[i], pm[i]), len(y), **kw)),
            "note": "shift = P(correct) with its own answer shown minus with the answer withheld; a verdict that"
                    " barely moves does not depend on the candidate",
        }
    sw = [(index.get((m, m, i)), index.get((m, "wrong_span", i))) for i in ids]
    sw = [(o, w) for o, w in sw if o and w and o["label"] == 1 and w["label"] == 0]
    if sw:
        po = np.array([o["p_correct"] for o, _ in sw])
        ps = np.array([w["p_correct"] for _, w in sw])
        out["c_swap"] = {
            "n": len(sw),
            "p_correct_own_correct": _est(mean_ci(po, **kw)), "p_correct_swapped_wrong": _est(mean_ci(ps, **kw)),
            "shift": _est(paired_diff_ci(po, ps, **kw)),
            "accept_rate_swapped": _est(mean_ci((ps >= 0.5).astype(float), **kw)),
            "note": "items where its own answer is correct: the same judge prompt with that answer swapped for a"
                    " wrong span of the passage (length-matched); a judge that reads the answer drops P(correct)",
        }
    return out


def _correlation(jb: np.ndarray, g: np.ndarray, kw: dict[str, Any]) -> dict[str, Any]:
    def rho(i: np.ndarray) -> float:
        a, b = jb[i], g[i]
        if np.all(a == a[0]) or np.all(b == b[0]):
            return float("nan")
        return spearman(a, b)

    return {"spearman": _est(bootstrap_indices(rho, len(jb), **kw)),
            "note": "Spearman between per-item generation correctness and balanced-set judging accuracy"}


def _breakdown(gens: list[dict[str, Any]], jb: np.ndarray, g: np.ndarray, kw: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("question_type", "hops"):
        groups: dict[str, list[int]] = defaultdict(list)
        for k, rec in enumerate(gens):
            val = rec.get(key)
            if val not in (None, ""):
                groups[str(val)].append(k)
        if len(groups) < 2:
            continue
        out[key] = {
            name: {"n": len(ix), "generation_accuracy": _est(mean_ci(g[ix], **kw)),
                   "judge_accuracy_balanced": _est(mean_ci(jb[ix], **kw))}
            for name, ix in sorted(groups.items())
        }
    return out


def _self_preference(judge: str, models: list[str], jrecs: list[dict[str, Any]],
                     kw: dict[str, Any]) -> dict[str, Any] | None:
    """Accept rate of the judge's own wrong answers minus other models' wrong answers."""
    others = [m for m in models if m != judge]
    if judge not in models or not others:
        return None
    per_item: dict[str, tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    for r in jrecs:
        if r["judge"] != judge or r["label"] == 1 or r["author"] not in models:
            continue
        acc = float(r["p_correct"] >= 0.5)
        per_item[r["item_id"]][0 if r["author"] == judge else 1].append(acc)
    items = [v for v in per_item.values() if v[0] and v[1]]
    if len(items) < 2:
        return None

    def stat(i: np.ndarray) -> float:
        own = [x for k in i for x in items[k][0]]
        oth = [x for k in i for x in items[k][1]]
        return float(np.mean(own) - np.mean(oth))

    own_rate = float(np.mean([x for it in items for x in it[0]]))
    other_rate = float(np.mean([x for it in items for x in it[1]]))
    return {"difference": _est(bootstrap_indices(stat, len(items), **kw)), "own_wrong_accept_rate": own_rate,
            "others_wrong_accept_rate": other_rate, "n_items": len(items)}
