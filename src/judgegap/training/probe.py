"""A held-out probe scored after every round of an online method: the calibration curve.

The final evaluation compares base and tuned once; a round-by-round curve shows *when* a
calibration-coupled method starts to help (or a self-rewarding one starts to hurt). After each
round (and before the first) the current policy answers a fixed set of held-out items greedily
and scores its own answers with the self-score prompt; ECE, Brier and AUROC of the expected
score against the official metric's correctness are logged with the round. The items come from
the configured ``eval`` datasets, with every training item and passage removed (checked like
the final evaluation), so a probe item is never trained on. The measures are the ones the
selfscore experiment and the held-out transfer use (judgegap.metrics.calibration).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from judgegap.errors import JudgegapError


@dataclass(frozen=True)
class ProbeSet:
    """Held-out items per evaluation dataset, with their metric and whether 'unanswerable' is allowed."""

    items: dict[str, list[Any]]
    metrics: dict[str, str]
    unanswerable: dict[str, bool]

    @property
    def n(self) -> int:
        return sum(len(v) for v in self.items.values())


def probe_set(cfg: Any, ctx: Any, per_dataset: int) -> ProbeSet:
    """``per_dataset`` items of every eval dataset that share no id and no passage with training."""
    from judgegap.data import DATASETS, stratified_sample
    from judgegap.experiments.runner import check_held_out, filtered_pool
    from judgegap.training.adapters import passage_hash

    if not cfg.eval:
        raise JudgegapError("method.params.probe_items needs eval: datasets to draw held-out probe items from")
    ids = {it.id for its in ctx.items.values() for it in its}
    passages = {passage_hash(it.context) for its in ctx.items.values() for it in its}
    items, metrics, unans = {}, {}, {}
    for ds in cfg.eval:
        spec = DATASETS.get(ds.name)
        pool = filtered_pool(ds, cfg.dataset_data_dir(ds))
        eligible = [it for it in pool if it.id not in ids and passage_hash(it.context) not in passages]
        if not eligible:
            raise JudgegapError(f"eval dataset {ds.name}: no held-out item left for the probe")
        picked = stratified_sample(eligible, min(per_dataset, len(eligible)), ds.seed,
                                   key=(lambda it: it.stratum) if ds.stratify else None)
        check_held_out(ds.name, picked, {"this training": (ids, passages)})
        items[ds.name], metrics[ds.name] = picked, spec.metric
        unans[ds.name] = any(not it.answerable for it in pool)
    return ProbeSet(items, metrics, unans)


def probe_calibration(be: Any, model: Any, probe: ProbeSet, model_cfg: Any, generate_template: str,
                      score_template: str, f1_threshold: float) -> dict[str, Any]:
    """The current policy on the probe: greedy answers, their self-scores, and ECE / Brier / AUROC of
    the expected score (mapped to [0, 1]) against correctness (official F1 >= ``f1_threshold``)."""
    from judgegap.experiments.base import answer_requests
    from judgegap.experiments.candidates import clean_answer, display_answer
    from judgegap.metrics.calibration import auroc, brier, ece
    from judgegap.metrics.qa import score_item
    from judgegap.metrics.scores import SCORE_CHOICES, expected_score, score_distribution, to_confidence
    from judgegap.prompts import PROMPTS
    from judgegap.training.see import scoring

    gen_t, score_t = PROMPTS.get(generate_template), PROMPTS.get(score_template)
    choices = list(SCORE_CHOICES)
    y: list[float] = []
    conf: list[float] = []
    for ds, items in probe.items.items():
        reqs = answer_requests(model_cfg, gen_t, items, probe.unanswerable[ds])
        preds = [clean_answer(c.text) for c in scoring(model, lambda: be.generate(reqs))]
        prompts = [score_t.render(context=it.context, question=it.question, candidate=display_answer(pr),
                                  allow_unanswerable=probe.unanswerable[ds]) for it, pr in zip(items, preds)]
        lps = scoring(model, lambda: be.score_choices(prompts, choices))
        for it, pred, pr, lp in zip(items, preds, prompts, lps):
            y.append(float(score_item(probe.metrics[ds], pred, it)[1] >= f1_threshold))
            dist = score_distribution(lp, choices, be.choice_extensions(pr, choices))[0]
            conf.append(to_confidence(expected_score(dist)))
    ya, ca = np.asarray(y), np.asarray(conf)
    return {"probe_n": len(y), "probe_accuracy": float(ya.mean()), "probe_mean_confidence": float(ca.mean()),
            "probe_ece": ece(ya, ca), "probe_brier": brier(ya, ca), "probe_auroc": auroc(ya, ca)}
