"""``serl``: self-rewarding online learning from pairwise ranking consistency (seed 004's SERL),
with no external signal in the reward.

Per round, on a fresh window of training prompts, the policy samples ``num_generations`` answers
per prompt (trl's ``GRPOTrainer``), then the *same* policy judges every pair of distinct answers
to one prompt in both orders (the ``qa_pair_judge`` prompt, P(" A") vs P(" B") read from the
log-probabilities). A pair counts only where the two orders agree on the winner -- the ranking
consistency that keeps a judge from rewarding whatever it sees first -- and an answer's reward is
its consistent win rate against the group (:func:`consistency_rewards`). The official metric is
never used for the reward; its F1 is logged beside it per round as a diagnostic (does the
self-ranking track correctness?), together with the share of consistent pairs.
"""

from __future__ import annotations

from itertools import permutations
from pathlib import Path
from typing import Any, Sequence


def consistency_rewards(answers: Sequence[str], pref: dict[tuple[int, int], float]) -> tuple[list[float], int, int]:
    """(reward per answer, consistent pairs, judged pairs) for one prompt's group.

    ``pref[(i, j)]``: the judge's P(A wins) with answer i shown as A and j as B, for every ordered
    pair of answers whose normalised texts differ. Pair {i, j} is consistent when both orders pick
    the same winner (pref(i, j) > 0.5 and pref(j, i) < 0.5, or the reverse); the winner scores 1
    and the loser 0 for that pair; an inconsistent pair, a tie at 0.5, or two identical answers
    score 0.5 each. An answer's reward is its mean over the other answers of the group (0.5 for a
    group of one)."""
    n = len(answers)
    score = [[0.5] * n for _ in range(n)]
    judged = consistent = 0
    for i in range(n):
        for j in range(i + 1, n):
            if (i, j) not in pref:
                continue
            judged += 1
            a, b = pref[(i, j)], pref[(j, i)]
            if a > 0.5 and b < 0.5:
                score[i][j], score[j][i] = 1.0, 0.0
            elif a < 0.5 and b > 0.5:
                score[i][j], score[j][i] = 0.0, 1.0
            else:
                continue
            consistent += 1
    rewards = [sum(score[i][j] for j in range(n) if j != i) / (n - 1) if n > 1 else 0.5 for i in range(n)]
    return rewards, consistent, judged


def train_serl(be: Any, ctx: Any, cfg: Any, p: Any, out: Path, resume: bool, progress: Any = None) -> dict[str, Any]:
    import math

    from judgegap.experiments.candidates import clean_answer, display_answer
    from judgegap.metrics.qa import score_item
    from judgegap.metrics.squad import normalize_answer
    from judgegap.prompts import PAIR_CHOICES, PROMPTS
    from judgegap.training.see import grpo_step, online_rounds, policy_rows, scoring

    gen_t, pair_t = PROMPTS.get(p.generate_template), PROMPTS.get(p.pair_template)
    unans = {ds: any(not it.answerable for it in ctx.pools[ds]) for ds in ctx.items}

    def one_round(model: Any, r: int, window: list[tuple[str, Any]], rdir: Path) -> tuple[Any, dict[str, Any]]:
        by_key = {f"{ds}|{it.id}": (ds, it) for ds, it in window}
        rows = policy_rows(be, gen_t, window, unans)
        stats = {"samples": 0, "reward": 0.0, "quality": 0.0, "consistent": 0, "judged": 0, "agree": 0, "decided": 0}

        def reward(prompts: list[str], completions: list[str], key: list[str], **_: Any) -> list[float]:
            preds = [clean_answer(t.strip().split("\n", 1)[0]) for t in completions]
            groups: dict[str, list[int]] = {}
            for idx, k in enumerate(key):
                groups.setdefault(k, []).append(idx)
            jobs, where = [], []
            for k, idxs in groups.items():
                ds, it = by_key[k]
                norm = [normalize_answer(preds[i]) for i in idxs]
                for a, b in permutations(range(len(idxs)), 2):
                    if norm[a] != norm[b]:
                        jobs.append(pair_t.render(context=it.context, question=it.question,
                                                  response_a=display_answer(preds[idxs[a]]),
                                                  response_b=display_answer(preds[idxs[b]])))
                        where.append((k, a, b))
            lps = scoring(model, lambda: be.score_choices(jobs, list(PAIR_CHOICES))) if jobs else []
            prefs: dict[str, dict[tuple[int, int], float]] = {k: {} for k in groups}
            for (k, a, b), (la, lb) in zip(where, lps):
                m = max(la, lb)
                pa, pb = math.exp(la - m), math.exp(lb - m)
                prefs[k][(a, b)] = pa / (pa + pb)
            out_r = [0.0] * len(preds)
            for k, idxs in groups.items():
                ds, it = by_key[k]
                rw, cons, judged = consistency_rewards([preds[i] for i in idxs], prefs[k])
                f1s = [score_item(ctx.metrics[ds], preds[i], it)[1] for i in idxs]  # diagnostic only
                for a, b in ((a, b) for a in range(len(idxs)) for b in range(a + 1, len(idxs))):
                    if rw[a] != rw[b] and (f1s[a] >= p.f1_threshold) != (f1s[b] >= p.f1_threshold):
                        stats["decided"] += 1
                        stats["agree"] += int((rw[a] > rw[b]) == (f1s[a] > f1s[b]))
                for i, x, f1 in zip(idxs, rw, f1s):
                    out_r[i] = x
                    stats["quality"] += f1
                stats["reward"] += sum(rw)
                stats["samples"] += len(idxs)
                stats["consistent"] += cons
                stats["judged"] += judged
            return out_r

        model, policy_loss = grpo_step(model, be, rows, reward, p, cfg, r, rdir)
        n = max(1, stats["samples"])
        return model, {"prompts": len(rows), "samples": stats["samples"], "reward": stats["reward"] / n,
                       "quality": stats["quality"] / n, "pairs_judged": stats["judged"],
                       "consistency": stats["consistent"] / stats["judged"] if stats["judged"] else None,
                       "agrees_with_metric": stats["agree"] / stats["decided"] if stats["decided"] else None,
                       "pairs_decided": stats["decided"], "policy_loss": policy_loss}

    return online_rounds(be, ctx, cfg, p, out, resume, progress, "SERL", one_round, p.generate_template)
