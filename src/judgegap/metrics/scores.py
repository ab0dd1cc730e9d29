"""Reading a numeric self-score from the score tokens' probabilities.

A score s in 1..10 is offered to the model as the continuation " s" after the
assessment prompt; ``score_choices`` returns log P(" s" | prompt) for each, computed
over all of the choice's tokens. Multi-token scores: with the digit-splitting
tokenisers of Llama/SmolLM2, Qwen2 and Gemma, " 10" is the tokens of " 1" followed by
"0", so log P(" 1") is really the probability of the *prefix* " 1" and includes
" 10". The exact probability of the score 1 is therefore P(" 1") - P(" 10"): in general
every choice that extends another choice is subtracted from it (``exact_choice_probs``).
The tests check this tokenisation property on every real model's tokenizer.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np

SCORES = tuple(range(1, 11))
SCORE_CHOICES = tuple(f" {s}" for s in SCORES)


def exact_choice_probs(choices: Sequence[str], logprobs: Sequence[float]) -> list[float]:
    """P(exactly this choice) from prefix probabilities, subtracting choices that extend it."""
    p = [math.exp(lp) if lp > -math.inf else 0.0 for lp in logprobs]
    out = []
    for i, c in enumerate(choices):
        ext = sum(p[j] for j, d in enumerate(choices) if j != i and d.startswith(c))
        out.append(max(p[i] - ext, 0.0))
    return out


def score_distribution(logprobs: Sequence[float], choices: Sequence[str] = SCORE_CHOICES) -> tuple[np.ndarray, float]:
    """(distribution over the scores, renormalised; total mass the model put on score tokens)."""
    ex = np.array(exact_choice_probs(choices, logprobs))
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
