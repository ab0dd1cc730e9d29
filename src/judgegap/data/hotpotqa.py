"""HotpotQA distractor setting (Yang et al., 2018).

``hotpotqa`` reads the official distractor schema (JSON list or JSON Lines);
``hotpotqa-ircot`` reads the IRCoT processed format of the same dev questions.
In both the context is exactly the provided paragraphs, each prefixed by its title.
"""

from __future__ import annotations

from pathlib import Path

from judgegap.data.io import read_records, require
from judgegap.data.registry import DatasetSpec, register_dataset
from judgegap.data.schemas import HotpotRecord, IrcotRecord, checked
from judgegap.data.types import QAItem


def join_paragraphs(paragraphs: list[tuple[str, str]]) -> str:
    """Render titled paragraphs as the passage the model reads."""
    return "\n\n".join(f"{title}: {text.strip()}" for title, text in paragraphs)


def parse_hotpotqa(path: Path) -> list[QAItem]:
    items: list[QAItem] = []
    for i, raw in enumerate(read_records(path)):
        rec = checked(HotpotRecord, raw, path, f"record {i}")
        paras = [(t, "".join(sents)) for t, sents in rec.context]
        items.append(QAItem(
            id=rec.id,
            dataset="hotpotqa",
            context=join_paragraphs(paras),
            question=rec.question,
            answers=(rec.answer,),
            answerable=True,
            metadata={
                "question_type": rec.type,
                "level": rec.level,
                "hops": 2,
                "supporting_titles": sorted({t for t, _ in rec.supporting_facts}),
                "supporting_facts": [list(x) for x in rec.supporting_facts],
            },
        ))
    return items


def parse_hotpotqa_ircot(path: Path) -> list[QAItem]:
    items: list[QAItem] = []
    for i, raw in enumerate(read_records(path)):
        rec = checked(IrcotRecord, raw, path, f"record {i}")
        answers: list[str] = []
        for obj in rec.answers_objects:
            if obj.spans:
                answers.append(", ".join(obj.spans))
            elif obj.number not in (None, ""):
                answers.append(str(obj.number))
        require(bool(answers), path, f"record {i} (id {rec.question_id!r}): no answer in answers_objects")
        paras = [(c.title, c.paragraph_text) for c in rec.contexts]
        items.append(QAItem(
            id=rec.question_id,
            dataset="hotpotqa-ircot",
            context=join_paragraphs(paras),
            question=rec.question_text,
            answers=tuple(dict.fromkeys(answers)),
            answerable=True,
            metadata={
                "question_type": "",
                "hops": 2,
                "supporting_titles": sorted({c.title for c in rec.contexts if c.is_supporting}),
            },
        ))
    return items


HOTPOTQA = register_dataset(DatasetSpec(
    name="hotpotqa",
    description="HotpotQA dev, distractor setting: 2-hop questions over 10 Wikipedia paragraphs",
    filenames=("hotpot_dev_distractor_v1.json", "migres_dev200.jsonl", "hotpot.json"),
    parse=parse_hotpotqa,
    metric="hotpotqa",
    url="http://curtis.ml.cmu.edu/datasets/hotpot/hotpot_dev_distractor_v1.json",
    citation="Yang et al. (2018). HotpotQA: A Dataset for Diverse, Explainable Multi-hop Question Answering.",
))

HOTPOTQA_IRCOT = register_dataset(DatasetSpec(
    name="hotpotqa-ircot",
    description="HotpotQA dev questions in IRCoT's processed format (500-question subsample)",
    filenames=("ircot_dev_subsampled500.jsonl", "dev_subsampled.jsonl"),
    parse=parse_hotpotqa_ircot,
    metric="hotpotqa",
    citation="Trivedi et al. (2023). Interleaving Retrieval with Chain-of-Thought Reasoning (IRCoT).",
))
