"""SQuAD 2.0 (Rajpurkar et al., 2018): official ``dev-v2.0.json`` schema, unanswerable included."""

from __future__ import annotations

import re
from pathlib import Path

from judgegap.data.io import read_json, require
from judgegap.data.registry import DatasetSpec, register_dataset
from judgegap.data.schemas import SquadArticle, checked
from judgegap.data.types import QAItem

_WH = ("what", "which", "who", "whom", "whose", "when", "where", "why", "how")


def question_type(question: str) -> str:
    """First wh-word of the question (the usual SQuAD breakdown), else ``other``."""
    for tok in re.findall(r"[a-z]+", question.lower()):
        if tok in _WH:
            return "who" if tok in ("whom", "whose") else tok
    return "other"


def _unique(texts: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(texts))


def parse_squad2(path: Path, dataset: str = "squad2") -> list[QAItem]:
    doc = read_json(path)
    require(isinstance(doc, dict) and isinstance(doc.get("data"), list), path, "expected {'data': [articles]}")
    items: list[QAItem] = []
    for ai, raw in enumerate(doc["data"]):
        article = checked(SquadArticle, raw, path, f"data[{ai}]")
        for pi, para in enumerate(article.paragraphs):
            for qa in para.qas:
                answers = _unique([a.text for a in qa.answers])
                impossible = qa.is_impossible if qa.is_impossible is not None else not answers
                require(impossible or bool(answers), path,
                        f"data[{ai}].paragraphs[{pi}] question {qa.id!r}: answerable but no answers")
                items.append(QAItem(
                    id=qa.id,
                    dataset=dataset,
                    context=para.context,
                    question=qa.question,
                    answers=() if impossible else answers,
                    answerable=not impossible,
                    metadata={
                        "title": article.title,
                        "question_type": question_type(qa.question),
                        "plausible_answers": list(_unique([a.text for a in qa.plausible_answers])),
                    },
                ))
    return items


SQUAD2 = register_dataset(DatasetSpec(
    name="squad2",
    description="SQuAD 2.0 dev: Wikipedia paragraphs, extractive answers, ~50% unanswerable",
    filenames=("dev-v2.0.json",),
    parse=parse_squad2,
    metric="squad2",
    url="https://rajpurkar.github.io/SQuAD-explorer/dataset/dev-v2.0.json",
    citation="Rajpurkar, Jia & Liang (2018). Know What You Don't Know: Unanswerable Questions for SQuAD.",
))
