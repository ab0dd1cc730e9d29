"""Reading a numeric self-score from the score tokens' probabilities.

A score s in 1..10 is offered to the model as the continuation " s" after the
assessment prompt; ``score_choices`` returns log P(" s" | prompt) for each, computed
over all of the choice's tokens. Multi-token scores: with the digit-splitting
tokenisers of Llama/SmolLM2, Qwen2 and Gemma, " 10" is the tokens of " 1" followed by
"0", so log P(" 1") is really the probability of the *prefix* " 1" and includes
" 10". The exact probability of the score 1 is therefore P(" 1") - P(" 10"): in general
every choice whose tokens extend another choice's is subtracted from it (``exact_choice_probs``),
with the extension relation taken from the backend's tokens (``choice_extensions``): a tokenizer
with " 10" as one token (GPT-2-style BPEs) subtracts nothing. The tests check both.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np

SCORES = tuple(range(1, 11))
SCORE_CHOICES = tuple(f" {s}" for s in SCORES)


def exact_choice_probs(choices: Sequence[str], logprobs: Sequence[float],
                       extensions: Sequence[Sequence[int]] | None = None) -> list[float]:
    """P(exactly this choice) from prefix probabilities, subtracting the choices that extend it.

    ``extensions[i]``: the choices whose *tokens* begin with choice i's tokens (the backend's
    ``choice_extensions``). None = a string prefix is a token prefix (true for the bundled models'
    digit-splitting tokenizers, false where " 10" is one token: pass the backend's answer)."""
    p = [math.exp(lp) if lp > -math.inf else 0.0 for lp in logprobs]
    if extensions is None:
        extensions = [[j for j, d in enumerate(choices) if j != i and d.startswith(c)] for i, c in enumerate(choices)]
    return [max(p[i] - sum(p[j] for j in extensions[i]), 0.0) for i in range(len(choices))]


def score_distribution(logprobs: Sequence[float], choices: Sequence[str] = SCORE_CHOICES,
                       extensions: Sequence[Sequence[int]] | None = None) -> tuple[np.ndarray, float]:
    """(distribution over the scores, renormalised; total mass the model put on score tokens)."""
    ex = np.array(exact_choice_probs(choices, logprobs, extensions))
    mass = float(ex.sum())
    if mass <= 0:
        return np.full(len(choices), 1.0 / len(choices)), 0.0
    return ex / mass, mass


def expected_score(dist: np.ndarray, scores: Sequence[int] = SCORES) -> float:
    return float(np.dot(dist, np.asarray(scores, float)))


def argmax_score(dist: np.ndarray, scores: Sequence[int] = SCORES) -> int:
    return int(np.asarray(scores)[int(np.argmax(dist))])


def top_k_scores(dist: np.ndarray, k: int, scores: Sequence[int] = SCORES) -> list[int]:
    order = np.argsort(-dist, kind="stable")[:k]
    return [int(np.asarray(scores)[i]) for i in order]


def f1_reference_score(f1: float) -> int:
    """The reference score an answer of official F1 ``f1`` earns on the 1-10 scale: 1 + 9 F1,
    rounded half up (F1 0 -> 1, 0.5 -> 6, 1 -> 10). Masked Judge Distillation's target when no
    external judge's scores are given, and the reference its top-k agreement is measured against."""
    if not 0.0 <= f1 <= 1.0:
        raise ValueError(f"F1 {f1} is outside [0, 1]")
    return 1 + int(math.floor(9 * f1 + 0.5))


def to_confidence(score: float, lo: int = 1, hi: int = 10) -> float:
    """Map a score on lo..hi to [0, 1] (the probability-like scale calibration needs)."""
    return (score - lo) / (hi - lo)


_NUM = re.compile(r"(?<![\d.])(10|[1-9])(?![\d])")


def parse_score(text: str | None) -> int | None:
    """The first integer 1..10 in a reply ("8", " 7/10", "Score: 9."), else None."""
    if not text:
        return None
    m = _NUM.search(text)
    return int(m.group(1)) if m else None
