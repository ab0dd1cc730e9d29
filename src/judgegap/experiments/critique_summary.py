"""The critique experiment's numbers, from its stored turns only, and the reading against seed 004.

Per dataset, protocol, group and track (an agent, or a debate's vote): the round measures of
judgegap.metrics.critique at every round against round 0 on the same items, tokens spent, and a
comparison table of round 0 vs round R. Then one plain-words reading per claim:

- ``self_revision_confidence`` — revising from its own reasoning makes a model more confident in
  its errors (self-revise: confidence on the items still wrong at round R, minus the confidence on
  the same items at round 0);
- ``cross_critique_accuracy`` — a different model's critique improves accuracy (cross-critique:
  accuracy at R minus round 0);
- ``cross_critique_calibration`` — ... and calibration (ECE at R minus round 0, lower is better);
- ``cross_beats_self`` — a different model's critique helps more than self-revision (the same
  author's accuracy gain under cross-critique minus under self-revise, same items);
- ``same_model_debate`` — debate among copies of one model does not beat self-correction
  (arXiv 2605.00914): the copies' majority vote's gain minus self-revise's gain; "holds" when the
  CI rules out a gain above 5 points, "does not hold" when it shows a gain.

Each reading is "holds", "does not hold" or "inconclusive at this n", from whether the 95% CI
excludes zero (all the evidence rows must agree), or "not measured" when the protocols it needs
did not run.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from judgegap.metrics.bootstrap import bootstrap_indices, paired_diff_ci
from judgegap.metrics.calibration import ece
from judgegap.metrics.critique import paired_gain_diff, round_measures, same_answer

SAME_MODEL_MARGIN = 0.05

CLAIMS = {
    "self_revision_confidence": "Revising from its own reasoning makes a model more confident in its errors",
    "cross_critique_accuracy": "Critique from a different model improves accuracy",
    "cross_critique_calibration": "Critique from a different model improves calibration (lower ECE)",
    "cross_beats_self": "A different model's critique helps more than self-revision",
    "same_model_debate": "Debate among copies of the same model does not beat self-revision",
}


def _tracks(records: list[dict[str, Any]]) -> dict[tuple[str, str, str, str], dict[int, dict[str, dict]]]:
    out: dict[tuple[str, str, str, str], dict[int, dict[str, dict]]] = defaultdict(lambda: defaultdict(dict))
    for r in records:
        out[(r["dataset"], r["protocol"], r["group"], r["agent"])][r["round"]][r["item_id"]] = r
    return out


def _track_summary(by_round: dict[int, dict[str, dict]], R: int, kw: dict[str, Any],
                   tokens: dict[int, dict[str, int]] | None) -> dict[str, Any] | None:
    rounds = sorted(r for r in by_round if r <= R)
    if not rounds or rounds[0] != 0:
        return None
    ids = sorted(set.intersection(*(set(by_round[r]) for r in rounds)))
    if not ids:
        return None
    seq = [[by_round[r][i] for i in ids] for r in rounds]
    c0 = [x["correct"] for x in seq[0]]
    out_rounds = []
    for k, recs in enumerate(seq):
        prev = seq[k - 1] if k else recs
        changed = [int(not same_answer(a["prediction"], b["prediction"])) for a, b in zip(prev, recs)]
        m = round_measures(c0, [x["correct"] for x in recs], changed, [x["confidence"] for x in recs], **kw)
        tok = tokens[rounds[k]] if tokens else {x["item_id"]: x["gen_tokens"] for x in recs}
        m["round"] = rounds[k]
        m["tokens_per_item"] = float(np.mean([tok.get(i, 0) for i in ids]))
        out_rounds.append(m)
    return {"n_items": len(ids), "rounds": out_rounds,
            "tokens_total_per_item": float(sum(r["tokens_per_item"] for r in out_rounds)),
            "flip_matrix_final": out_rounds[-1]["flips"], "complete": rounds[-1] == R}


def _group_tokens(tracks: dict[tuple[str, str, str, str], dict[int, dict[str, dict]]], key: tuple[str, str, str]
                  ) -> dict[int, dict[str, int]]:
    """A vote's tokens: what all the group's agents spent, per round and item."""
    out: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for (ds, proto, group, agent), by_round in tracks.items():
        if (ds, proto, group) == key and not agent.startswith("vote:"):
            for r, recs in by_round.items():
                for i, x in recs.items():
                    out[r][i] += x["gen_tokens"]
    return out


def summarize_turns(turns: list[dict[str, Any]], votes: list[dict[str, Any]], R: int, kw: dict[str, Any],
                    f1_threshold: float) -> dict[str, Any]:
    raw = _tracks(turns + votes)
    out: dict[str, Any] = {"experiment": "critique", "rounds": R, "f1_threshold": f1_threshold, "datasets": {},
                           "definitions": {
                               "right_to_wrong": "share of items right at round 0 and wrong at round r",
                               "wrong_to_right": "share of items wrong at round 0 and right at round r",
                               "change_rate": "share of items whose answer differs from the previous round",
                               "confidence": "the agent's own P(Yes) on its current answer (judge prompt)",
                               "tokens_per_item": "tokens generated per item in that round (reviews included;"
                                                  " a vote counts all its agents)"}}
    for (ds, proto, group, agent), by_round in sorted(raw.items()):
        tok = _group_tokens(raw, (ds, proto, group)) if agent.startswith("vote:") else None
        s = _track_summary(by_round, R, kw, tok)
        if s is None:
            continue
        d = out["datasets"].setdefault(ds, {"protocols": {}, "comparison": []})
        d["protocols"].setdefault(proto, {}).setdefault(group, {})[agent] = s
        first, last = s["rounds"][0], s["rounds"][-1]
        d["comparison"].append({"protocol": proto, "group": group, "track": agent, "n": s["n_items"],
                                "accuracy_round0": first["accuracy"], "accuracy_final": last["accuracy"],
                                "delta_accuracy": last["delta_accuracy"], "change_rate_final": last["change_rate"],
                                "tokens_total_per_item": s["tokens_total_per_item"], "complete": s["complete"]})
    out["readings"] = readings(raw, R, kw)
    return out


def _verdict(est: dict[str, Any], direction: int, margin: float | None = None) -> str:
    lo, hi = est.get("ci_low"), est.get("ci_high")
    if lo is None or hi is None or lo != lo or hi != hi:
        return "inconclusive at this n"
    if margin is not None:  # a "no benefit" claim: holds when a benefit above the margin is ruled out
        return "does not hold" if lo > 0 else ("holds" if hi < margin else "inconclusive at this n")
    if (lo > 0 and direction > 0) or (hi < 0 and direction < 0):
        return "holds"
    if (lo > 0 and direction < 0) or (hi < 0 and direction > 0):
        return "does not hold"
    return "inconclusive at this n"


def _aligned(tracks: Any, key: tuple[str, str, str, str], R: int) -> tuple[list[str], dict[str, dict], dict[str, dict]]:
    by_round = tracks.get(key, {})
    if 0 not in by_round or R not in by_round:
        return [], {}, {}
    ids = sorted(set(by_round[0]) & set(by_round[R]))
    return ids, by_round[0], by_round[R]


def _tokens_spent(tracks: Any, key: tuple[str, str, str], ids: list[str], R: int) -> float:
    """Tokens a group's agents generated on ``ids`` over rounds 1..R (the revision's extra cost)."""
    total = 0
    for (ds, proto, group, agent), by_round in tracks.items():
        if (ds, proto, group) == key and not agent.startswith("vote:"):
            total += sum(by_round.get(r, {}).get(i, {}).get("gen_tokens", 0) for r in range(1, R + 1) for i in ids)
    return float(total)


def _gain_vs_self_revise(tracks: Any, ds: str, model: str, ids: list[str], r0: dict[str, dict],
                         rR: dict[str, dict], R: int, kw: dict[str, Any]) -> tuple[dict[str, Any], list[str]] | None:
    """A track's accuracy gain (round R - round 0) minus the same model's self-revise gain, paired
    over the items both have; None when self-revise did not run on any of them."""
    sids, s0, sR = _aligned(tracks, (ds, "self-revise", model, model), R)
    common = [i for i in ids if i in set(sids)]
    if not common:
        return None
    return paired_gain_diff([rR[i]["correct"] - r0[i]["correct"] for i in common],
                            [sR[i]["correct"] - s0[i]["correct"] for i in common], **kw), common


def readings(tracks: Any, R: int, kw: dict[str, Any]) -> list[dict[str, Any]]:
    """Seed 004's claims, read per dataset from the stored turns (see the module docstring)."""
    evidence: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    datasets = sorted({k[0] for k in tracks})
    for (ds, proto, group, agent) in sorted(tracks):
        ids, r0, rR = _aligned(tracks, (ds, proto, group, agent), R)
        if not ids or agent.startswith("vote:") and proto != "same-model-debate":
            continue
        y0 = np.array([r0[i]["correct"] for i in ids], float)
        yR = np.array([rR[i]["correct"] for i in ids], float)
        has_conf = all(r0[i]["confidence"] is not None and rR[i]["confidence"] is not None for i in ids)
        if proto == "self-revise" and has_conf:
            wrong = [k for k, i in enumerate(ids) if rR[i]["correct"] == 0]
            p0 = np.array([r0[ids[k]]["confidence"] for k in wrong], float)
            pR = np.array([rR[ids[k]]["confidence"] for k in wrong], float)
            e = paired_diff_ci(pR, p0, **kw).to_dict()
            evidence[(ds, "self_revision_confidence")].append(
                {"track": f"{proto} · {group}", "measure": "confidence on its final wrong answers, round R - round 0",
                 "estimate": e, "verdict": _verdict(e, +1)})
        if proto == "cross-critique":
            e = paired_diff_ci(yR, y0, **kw).to_dict()
            evidence[(ds, "cross_critique_accuracy")].append(
                {"track": f"{proto} · {group}", "measure": "accuracy, round R - round 0", "estimate": e,
                 "verdict": _verdict(e, +1)})
            if has_conf:
                q0 = np.array([r0[i]["confidence"] for i in ids], float)
                qR = np.array([rR[i]["confidence"] for i in ids], float)
                e = bootstrap_indices(lambda ix: ece(yR[ix], qR[ix]) - ece(y0[ix], q0[ix]), len(ids), **kw).to_dict()
                evidence[(ds, "cross_critique_calibration")].append(
                    {"track": f"{proto} · {group}", "measure": "ECE, round R - round 0", "estimate": e,
                     "verdict": _verdict(e, -1)})
            author = group.split("<-")[0]
            got = _gain_vs_self_revise(tracks, ds, author, ids, r0, rR, R, kw)
            if got:
                e, _ = got
                evidence[(ds, "cross_beats_self")].append(
                    {"track": f"{group} vs self-revise · {author}", "measure": "accuracy gain, cross - self",
                     "estimate": e, "verdict": _verdict(e, +1)})
        if proto == "same-model-debate" and agent == "vote:majority":
            model = group.rsplit("x", 1)[0]
            got = _gain_vs_self_revise(tracks, ds, model, ids, r0, rR, R, kw)
            if got:
                e, common = got
                spent = _tokens_spent(tracks, (ds, proto, group), common, R)
                own = _tokens_spent(tracks, (ds, "self-revise", model), common, R)
                evidence[(ds, "same_model_debate")].append(
                    {"track": f"{group} (majority vote) vs self-revise · {model}",
                     "measure": "accuracy gain, same-model debate - self-revise", "estimate": e,
                     "tokens_ratio": spent / own if own else None,
                     "verdict": _verdict(e, +1, margin=SAME_MODEL_MARGIN)})
    out = []
    for ds in datasets:
        for claim, text in CLAIMS.items():
            ev = evidence.get((ds, claim), [])
            verdicts = {e["verdict"] for e in ev}
            overall = ("not measured" if not ev else next(iter(verdicts)) if len(verdicts) == 1
                       else "inconclusive at this n (the evidence disagrees)")
            out.append({"dataset": ds, "claim": claim, "text": text, "verdict": overall, "evidence": ev})
    return out


OTHER_CLAIMS = {
    "rubber_stamp": "A model accepts its own wrong answers more often than other models' wrong answers",
    "feels_correct": "A judge accepts what it itself finds probable (self-agreement), correctness held fixed",
    "alternatives": "Judging against broader alternatives lowers the acceptance of its own wrong answers",
}


def seed004_claims(run_summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Seed 004's other claims, read from the summaries of the experiments that measure them (the
    critique readings cover revision and debate): self-preference from asymmetry, the own-answer
    self-agreement coefficient, and the alternatives comparison. One row per dataset and judge;
    the verdict comes from the CI exactly as for the critique claims."""
    exps = run_summary.get("experiments", {})
    rows: list[dict[str, Any]] = []
    for ds, d in (exps.get("asymmetry", {}).get("datasets") or {}).items():
        for judge, m in (d.get("models") or {}).items():
            sp = (m or {}).get("self_preference")
            if sp and sp.get("difference"):
                rows.append({"dataset": ds, "judge": judge, "claim": "rubber_stamp", "text": OTHER_CLAIMS["rubber_stamp"],
                             "measure": "accept rate of its own wrong answers - of others' wrong answers",
                             "estimate": sp["difference"], "verdict": _verdict(sp["difference"], +1)})
    for ds, per_judge in (exps.get("self_agreement", {}).get("datasets") or {}).items():
        for judge, groups in per_judge.items():
            e = (groups.get("own") or {}).get("logit_coef")
            if e:
                rows.append({"dataset": ds, "judge": judge, "claim": "feels_correct", "text": OTHER_CLAIMS["feels_correct"],
                             "measure": "log-odds of accepting its own answers per SD of their log-probability",
                             "estimate": e, "verdict": _verdict(e, +1)})
    for r in exps.get("alternatives", {}).get("readings") or []:
        if r.get("estimate"):
            rows.append({"dataset": r["dataset"], "judge": r["judge"], "claim": "alternatives",
                         "text": OTHER_CLAIMS["alternatives"],
                         "measure": "accept rate of its own wrong answers, among alternatives - alone",
                         "estimate": r["estimate"], "verdict": _verdict(r["estimate"], -1)})
    return rows
