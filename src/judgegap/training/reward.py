"""The SEE reward (seed 002): answer quality plus agreement of the self-score with a reference.

    reward = w_q * quality + w_c * (1 - |self - reference| / (hi - lo)) ** gamma

with quality in [0, 1] (here the official F1 of the answer), ``self`` the score the model gave
its own answer and ``reference`` the judge's score on the same lo..hi scale (here 1 + 9 F1, or
10 / 1 by correctness). A reply whose score cannot be read gets ``format_penalty`` instead. The
defaults are the SEE code's: w_q 0.7, w_c 0.3, gamma 2, penalty -1; gamma > 1 punishes large
self-score errors more than linearly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SCORE = re.compile(r"score\s*[:=]?\s*(10|[1-9])(?![\d.])", re.IGNORECASE)


@dataclass(frozen=True)
class RewardWeights:
    w_quality: float = 0.7
    w_calibration: float = 0.3
    gamma: float = 2.0
    format_penalty: float = -1.0
    lo: int = 1
    hi: int = 10


def split_scored_reply(text: str) -> tuple[str, int | None]:
    """(answer, self-score) from a reply in the qa_generate_scored format: the answer is the text
    before the score line (first line), the score the last "Score: N" in the reply (None if absent)."""
    found = list(_SCORE.finditer(text))
    score = int(found[-1].group(1)) if found else None
    head = text[: found[-1].start()] if found else text
    answer = head.strip().split("\n", 1)[0].strip()
    return answer, score


def see_reward(quality: float, self_score: float | None, reference: float, w: RewardWeights = RewardWeights()
               ) -> dict[str, float]:
    """The reward and its parts (logged per round): quality, calibration, format_ok, reward.
    ``self_score`` may be an expected score (a float on lo..hi) or a written one (an int)."""
    if not 0.0 <= quality <= 1.0:
        raise ValueError(f"quality {quality} is outside [0, 1]")
    if self_score is None or not w.lo <= self_score <= w.hi:
        return {"quality": quality, "calibration": 0.0, "format_ok": 0.0, "reward": w.format_penalty}
    cal = max(0.0, 1.0 - abs(self_score - reference) / (w.hi - w.lo)) ** w.gamma
    return {"quality": quality, "calibration": cal, "format_ok": 1.0,
            "reward": w.w_quality * quality + w.w_calibration * cal}
