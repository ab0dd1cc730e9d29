"""DROP (Dua et al., 2019): official ``drop_dataset_dev.json`` schema (number / date / spans)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from judgegap.data.io import read_json, require
from judgegap.data.registry import DatasetSpec, register_dataset
from judgegap.data.types import QAItem
from judgegap.metrics.drop import answer_json_to_strings


def parse_drop(path: Path) -> list[QAItem]:
    doc = read_json(path)
    require(isinstance(doc, dict), path, "expected {passage_id: {passage, qa_pairs}}")
    items: list[QAItem] = []
    seen: dict[str, int] = {}
    for pid, entry in doc.items():
        require(isinstance(entry, dict) and isinstance(entry.get("passage"), str)
                and isinstance(entry.get("qa_pairs"), list), path,
                f"passage {pid!r} needs 'passage' and 'qa_pairs'")
        for qa in entry["qa_pairs"]:
            require(isinstance(qa, dict) and {"question", "answer", "query_id"} <= qa.keys(), path,
                    f"a question of passage {pid!r} lacks question/answer/query_id")
            golds: list[dict[str, Any]] = [qa["answer"]] + list(qa.get("validated_answers") or [])
            spans: list[tuple[str, ...]] = []
            try:
                _, main_type = answer_json_to_strings(qa["answer"])
                for g in golds:
                    strings, _ = answer_json_to_strings(g)
                    if strings[0].strip() and strings not in spans:
                        spans.append(strings)
            except (ValueError, KeyError, TypeError):
                require(False, path, f"query {qa['query_id']}: answer is not number/date/spans")
            qid = str(qa["query_id"])
            seen[qid] = seen.get(qid, 0) + 1
            item_id = qid if seen[qid] == 1 else f"{qid}#{seen[qid]}"
            items.append(QAItem(
                id=item_id,
                dataset="drop",
                context=entry["passage"],
                question=qa["question"],
                answers=tuple(", ".join(s) for s in spans),
                answerable=True,
                gold_spans=tuple(spans),
                metadata={"passage_id": pid, "query_id": qid, "answer_type": main_type,
                          "question_type": main_type},
            ))
    return items


DROP = register_dataset(DatasetSpec(
    name="drop",
    description="DROP dev: discrete reasoning over paragraphs (numbers, dates, multi-span answers)",
    filenames=("drop_dataset_dev.json", "drop_dataset_dev.prefix.json"),
    parse=parse_drop,
    metric="drop",
    url="https://s3-us-west-2.amazonaws.com/allennlp/datasets/drop/drop_dataset.zip",
    url_member="drop_dataset/drop_dataset_dev.json",
    citation="Dua et al. (2019). DROP: A Reading Comprehension Benchmark Requiring Discrete Reasoning Over Paragraphs.",
))
