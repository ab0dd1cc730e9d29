"""Typed records: what an experiment stores per item, as frozen pydantic models.

Every record a built-in experiment writes is validated against its model when it is stored
(``Store.put_records``): a misspelt field, a string where a probability belongs, or a field an
experiment forgot is an error at write time, not a silently different summary. Models are frozen
(records are facts about a model call) and forbid unknown fields. Plugins register their own
with :func:`register_record`.

Records are stored and read back as JSON objects (``Store.records``) so summaries stay plain
dict code; ``Store.typed(experiment, kind)`` returns the model instances.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from judgegap.errors import JudgegapError, first_error


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())


class Answer(Record):
    """What every stored answer carries: the item, the model, its text and the official score."""

    dataset: str
    item_id: str
    model: str
    raw_text: str
    prediction: str
    em: float
    f1: float
    correct: int
    answerable: bool
    question: str
    gold: str


class Generation(Answer):
    """A model's answer to one QA item, scored by the official metric (asymmetry)."""

    role: str
    n_tokens: int
    context: str
    question_type: str
    hops: int | None = None
    template: str


class Judgment(Record):
    """One judge's verdict on one candidate answer (asymmetry): log-probs of " Yes" / " No"."""

    dataset: str
    item_id: str
    judge: str
    author: str
    role: str
    candidate: str
    label: int
    label_f1: float
    lp_yes: float
    lp_no: float
    p_correct: float
    verdict_mass: float
    text_reply: str | None = None
    text_verdict: int | None = None
    template: str


class ScoreDist(Record):
    dist: list[float]
    mass: float
    expected: float
    argmax: int
    top5: list[int]


class ScoredAnswer(Answer):
    """A model's answer with its own and the external judges' 1-10 score distributions (selfscore)."""

    text_reply: str | None = None
    text_score: int | None = None
    template: str
    scores: dict[str, ScoreDist]


class PairVerdict(Record):
    """A judge's verdict on one human-labelled pair, made here (mode model) or read from a file (saved)."""

    dataset: str
    item_id: str
    label: str | None
    votes: list[Any]
    len_a: int
    len_b: int
    instruction: str
    response_a: str
    response_b: str
    subset: str
    judge: str
    mode: str
    verdict: str | None = None
    verdict_first: str | None = None
    verdict_swapped: str | None = None
    verdict_averaged: str | None = None
    text_verdict: str | None = None
    # mode "model"
    template: str | None = None
    tie_option: bool | None = None
    p_first: list[float] | None = None
    p_swapped: list[float] | None = None
    p_a_averaged: float | None = None
    text_first: str | None = None
    text_swapped: str | None = None
    text_verdict_first: str | None = None
    text_verdict_swapped: str | None = None
    # mode "saved"
    raw_verdict: Any = None
    missing: bool | None = None
    source_file: str | None = None


class SelfPair(Record):
    """A judge choosing between its own answer and another model's (self-preference)."""

    dataset: str
    item_id: str
    judge: str
    own_model: str
    other_model: str
    own_correct: int
    own_answer: str
    other_answer: str
    p_own: float
    prefers_own: int
    verdict: str | None
    template: str


class CritiqueTurn(Record):
    """One agent's answer to one item at one round of a critique protocol (or a debate's vote)."""

    dataset: str
    item_id: str
    protocol: str
    group: str
    agent: str  # the model, "model#k" for a sampled copy, or "vote:majority" / "vote:confidence"
    model: str  # "" for a vote
    round: int
    raw_text: str
    prediction: str
    em: float
    f1: float
    correct: int
    changed: int  # the answer differs from the agent's previous round (normalised text)
    confidence: float | None  # the agent's P(" Yes") on its current answer; None when not read
    critic: str | None  # who reviewed the previous answer before this one (None: no review)
    critique: str | None
    gen_tokens: int  # tokens generated for this turn (the review included)
    prompt_tokens: int
    template: str


class AlternativesPick(Record):
    """One judge's pick among an item's candidate answers shown together (alternatives), in one order.

    ``options`` are the candidates in the order shown (A, B, ...); the last letter, one past them,
    is "none of these". ``lp`` holds the log-probability of every letter, ``none`` included."""

    dataset: str
    item_id: str
    judge: str
    order: int  # 0: the seeded shuffle; 1: the same options reversed (position-bias control)
    options: list[str]
    sources: list[str]  # who each option came from: a model name, "gold" or "wrong_span"
    labels: list[int]  # the official metric's correctness of each option (F1 >= threshold)
    lp: list[float]
    probs: list[float]  # lp renormalised over the offered letters
    own_index: int  # where the judge's own answer is shown
    pick: int  # argmax of probs; len(options) = "none of these"
    template: str


RECORD_TYPES: dict[tuple[str, str], type[Record]] = {
    ("asymmetry", "generation"): Generation,
    ("asymmetry", "judgment"): Judgment,
    ("selfscore", "scored_answer"): ScoredAnswer,
    ("pairwise", "pair"): PairVerdict,
    ("pairwise", "self_pair"): SelfPair,
    ("critique", "turn"): CritiqueTurn,
    ("critique", "vote"): CritiqueTurn,
    ("alternatives", "pick"): AlternativesPick,
}


def register_record(experiment: str, kind: str, model: type[Record]) -> None:
    """Declare the record type an experiment stores under ``kind`` (validated on every write)."""
    RECORD_TYPES[(experiment, kind)] = model


def checked_record(experiment: str, kind: str, rec: Any) -> dict[str, Any]:
    """The JSON object to store for ``rec`` (a Record or a dict), validated against its type."""
    if isinstance(rec, Record):
        return rec.model_dump(exclude_unset=True)
    model = RECORD_TYPES.get((experiment, kind))
    if model is None:
        return rec
    try:
        return model.model_validate(rec).model_dump(exclude_unset=True)
    except ValidationError as exc:
        loc, msg = first_error(exc)
        raise JudgegapError(f"internal: a {experiment}/{kind} record does not fit {model.__name__}: {loc}: {msg}") from None
