"""Gold-labelled candidate answers for the balanced judged set.

Each item gets its gold answer (a positive) and one plausible wrong answer taken from
the passage (a negative), so judging ability can be measured on equal numbers of
correct and incorrect candidates regardless of how often the author model is right.
Labels always come from the official metric, never from how a candidate was made.
"""

from __future__ import annotations

import random
import re
from collections import defaultdict

from judgegap.data.types import QAItem
from judgegap.metrics.qa import score_item

ABSTAIN_TEXT = "unanswerable"
_ABSTAIN_RE = re.compile(
    r"^\W*(unanswerable|not answerable|no answer|cannot be answered|can ?not be determined|"
    r"the passage does not (say|mention|contain|state)|not (mentioned|stated|given)|unknown|n/?a)\b",
    re.IGNORECASE,
)


def is_abstention(text: str) -> bool:
    return bool(_ABSTAIN_RE.match(text.strip()))


def clean_answer(text: str) -> str:
    """The prediction the official metric sees: stripped, abstentions as ""."""
    t = text.strip().strip('"').strip()
    if t.lower().startswith("answer:"):
        t = t[7:].strip()
    t = t.rstrip(".").strip() if not re.search(r"\d\.\d*$", t) else t
    return "" if is_abstention(t) else t


def display_answer(prediction: str) -> str:
    """How a (cleaned) prediction is shown to a judge."""
    return prediction if prediction else ABSTAIN_TEXT


def _titles(context: str) -> list[str]:
    out = []
    for para in context.split("\n\n"):
        head, sep, _ = para.partition(": ")
        if sep and 0 < len(head) <= 80:
            out.append(head.strip())
    return out


def _random_window(item: QAItem, rng: random.Random, metric: str, threshold: float) -> str | None:
    words = item.context.split()
    if not words:
        return None
    size = max(1, min(5, len((item.answers[0] if item.answers else "x y").split())))
    for _ in range(50):
        start = rng.randrange(0, max(1, len(words) - size))
        cand = " ".join(words[start:start + size]).strip(".,;:()\"'")
        if cand and score_item(metric, cand, item)[1] < threshold:
            return cand
    return None


def wrong_candidate(item: QAItem, siblings: list[QAItem], metric: str, threshold: float,
                    rng: random.Random) -> str | None:
    """A plausible wrong answer from the passage, or None if none can be found."""
    def wrong(c: str) -> bool:
        return bool(c.strip()) and score_item(metric, c, item)[1] < threshold

    if not item.answerable:
        for p in item.metadata.get("plausible_answers", []):
            if p.strip():
                return p
    gold = (item.answers[0] if item.answers else "").strip().lower()
    if gold in ("yes", "no"):
        return "no" if gold == "yes" else "yes"
    pool = [a for s in siblings if s.id != item.id for a in s.answers if a in item.context and wrong(a)]
    if not pool:
        pool = [t for t in _titles(item.context) if wrong(t)]
    if pool:
        return rng.choice(sorted(set(pool)))
    return _random_window(item, rng, metric, threshold)


def gold_candidate(item: QAItem, metric: str, threshold: float) -> str | None:
    """The first gold answer that the official metric itself scores correct as ONE string.

    A multi-span DROP answer joined into one string is not (the official script never
    splits a string: "Brady, Palmer" scores F1 0.33 against the spans Brady / Palmer), so
    such an item has no gold candidate unless a validated answer is a single span."""
    if not item.answerable or not item.answers:
        return ABSTAIN_TEXT
    for a in item.answers:
        if score_item(metric, clean_answer(a), item)[1] >= threshold:
            return a
    return None


def balanced_candidates(items: list[QAItem], metric: str, threshold: float, seed: int,
                        pool: list[QAItem] | None = None) -> dict[str, list[tuple[str, str]]]:
    """item id -> [("gold", text), ("wrong_span", text)] for each of ``items`` (wrong omitted if
    none found; an item without a gold answer the official metric accepts as one string gets no
    candidates). Wrong answers may come from sibling questions on the same passage in ``pool``;
    each item's choice depends only on its id and the seed, so a sample gets the same candidates
    as the whole pool would."""
    by_context: dict[str, list[QAItem]] = defaultdict(list)
    for it in (pool if pool is not None else items):
        by_context[it.context].append(it)
    out: dict[str, list[tuple[str, str]]] = {}
    for it in items:
        rng = random.Random(f"{seed}:{it.id}")
        gold = gold_candidate(it, metric, threshold)
        if gold is None:
            out[it.id] = []
            continue
        cands = [("gold", gold)]
        w = wrong_candidate(it, by_context[it.context], metric, threshold, rng)
        if w is not None:
            cands.append(("wrong_span", w))
        out[it.id] = cands
    return out
