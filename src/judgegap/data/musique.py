"""MuSiQue (Trivedi et al., 2022): answerable (``musique``) and full (``musique-full``) variants.

The context is the 20 given paragraphs, titled. In the full variant half the questions
are unanswerable from their paragraphs; the correct response is then to abstain.
"""

from __future__ import annotations

from pathlib import Path

from judgegap.data.hotpotqa import join_paragraphs
from judgegap.data.io import read_records
from judgegap.data.registry import DatasetSpec, register_dataset
from judgegap.data.schemas import MusiqueRecord, checked
from judgegap.data.types import QAItem


def _make_parser(dataset: str):
    def parse(path: Path) -> list[QAItem]:
        items: list[QAItem] = []
        for i, raw in enumerate(read_records(path)):
            rec = checked(MusiqueRecord, raw, path, f"record {i}")
            answerable = rec.answerable
            golds = tuple(dict.fromkeys([rec.answer] + list(rec.answer_aliases)))
            qtype = rec.id.split("__")[0]
            hops = int(qtype[0]) if qtype[:1].isdigit() else None
            items.append(QAItem(
                id=rec.id,
                dataset=dataset,
                context=join_paragraphs([(p.title, p.paragraph_text) for p in rec.paragraphs]),
                question=rec.question,
                answers=golds if answerable else (),
                answerable=answerable,
                metadata={
                    "question_type": qtype,
                    "hops": hops,
                    "supporting_idx": [p.idx for p in rec.paragraphs if p.is_supporting],
                    "supporting_titles": [p.title for p in rec.paragraphs if p.is_supporting],
                    "reference_answers": list(golds),
                },
            ))
        return items

    return parse


_CITE = "Trivedi et al. (2022). MuSiQue: Multihop Questions via Single-hop Question Composition."

MUSIQUE = register_dataset(DatasetSpec(
    name="musique",
    description="MuSiQue-Ans dev: 2-4 hop questions over 20 paragraphs (all answerable)",
    filenames=("musique_ans_v1.0_dev.jsonl", "migres_musique_ans_dev200.jsonl", "musique.json"),
    parse=_make_parser("musique"),
    metric="musique",
    url="https://drive.google.com/uc?id=1tGdADlNjWFaHLeZZGShh2IRcpO6Lv24h",
    url_member="data/musique_ans_v1.0_dev.jsonl",
    citation=_CITE,
))

MUSIQUE_FULL = register_dataset(DatasetSpec(
    name="musique-full",
    description="MuSiQue-Full dev: answerable questions paired with unanswerable contrasts",
    filenames=("musique_full_v1.0_dev.jsonl",),
    parse=_make_parser("musique-full"),
    metric="musique",
    url="https://drive.google.com/uc?id=1tGdADlNjWFaHLeZZGShh2IRcpO6Lv24h",
    url_member="data/musique_full_v1.0_dev.jsonl",
    citation=_CITE,
))
