"""Pydantic models of the official dataset schemas, so every field a loader reads is checked.

A loader validates each record against its model before reading it; a wrong type, a null
or a list where a string belongs is reported as one line naming the file, the record and
the field — never a traceback, and never a silent ``str(None) == "None"`` gold answer.
Unknown extra fields are allowed (processed copies of the datasets add their own).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from pydantic import (BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError,
                      model_validator)

from judgegap.errors import DataError, json_kind


class _Rec(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


# -- SQuAD 2.0 (dev-v2.0.json) -------------------------------------------------------------
class SquadAnswer(_Rec):
    text: StrictStr
    answer_start: StrictInt | None = None


class SquadQA(_Rec):
    id: StrictStr
    question: StrictStr
    answers: list[SquadAnswer]
    is_impossible: StrictBool | None = None
    plausible_answers: list[SquadAnswer] = Field(default_factory=list)


class SquadParagraph(_Rec):
    context: StrictStr
    qas: list[SquadQA]


class SquadArticle(_Rec):
    title: StrictStr = ""
    paragraphs: list[SquadParagraph]


# -- HotpotQA distractor (hotpot_dev_distractor_v1.json) ---------------------------------------
class HotpotRecord(_Rec):
    id: StrictStr = Field(alias="_id")
    question: StrictStr
    answer: StrictStr
    context: list[tuple[StrictStr, list[StrictStr]]]
    supporting_facts: list[tuple[StrictStr, StrictInt]] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _pairs_as_tuples(cls, v: Any) -> Any:
        """JSON has no tuples: [title, [sentences]] pairs arrive as 2-element lists."""
        if isinstance(v, dict):
            v = dict(v)
            for k in ("context", "supporting_facts"):
                if isinstance(v.get(k), list):
                    v[k] = [tuple(x) if isinstance(x, list) and len(x) == 2 else x for x in v[k]]
        return v
    type: StrictStr = ""
    level: StrictStr = ""


class IrcotAnswer(_Rec):
    spans: list[StrictStr] = Field(default_factory=list)
    number: StrictStr | StrictInt | None = None


class IrcotContext(_Rec):
    title: StrictStr
    paragraph_text: StrictStr
    is_supporting: StrictBool = False


class IrcotRecord(_Rec):
    question_id: StrictStr
    question_text: StrictStr
    answers_objects: list[IrcotAnswer]
    contexts: list[IrcotContext]


# -- MuSiQue (musique_{ans,full}_v1.0_dev.jsonl) -----------------------------------------------
class MusiqueParagraph(_Rec):
    idx: StrictInt | None = None
    title: StrictStr = ""
    paragraph_text: StrictStr
    is_supporting: StrictBool = False


class MusiqueRecord(_Rec):
    id: StrictStr
    question: StrictStr
    answer: StrictStr
    answer_aliases: list[StrictStr] = Field(default_factory=list)
    paragraphs: list[MusiqueParagraph]
    answerable: StrictBool = True


M = TypeVar("M", bound=BaseModel)


def checked(model: type[M], obj: Any, path: Path, where: str) -> M:
    """``obj`` validated as ``model``, or one DataError naming file, record and field."""
    try:
        return model.model_validate(obj)
    except ValidationError as exc:
        e = exc.errors()[0]
        loc = ".".join(str(x) for x in e["loc"])
        got = e.get("input")
        detail = "missing" if e["type"] == "missing" else f"{e['msg'].lower()}, got {json_kind(got)}"
        rid = ""
        if isinstance(obj, dict):
            for k in ("id", "_id", "question_id", "query_id"):
                if isinstance(obj.get(k), (str, int)):
                    rid = f" (id {obj[k]!r})"
                    break
        raise DataError(f"{path}: wrong schema at {where}{rid}: field '{loc}' {detail}") from None
