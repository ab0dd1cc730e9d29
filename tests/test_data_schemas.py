"""Data files validated against the official schemas: one line naming file, record and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from judgegap.data import DATASETS
from judgegap.errors import DataError
from tests.conftest import cli_inproc


def _squad(qa: dict) -> dict:
    return {"version": "v2.0", "data": [{"title": "T", "paragraphs": [{"context": "Paris is in France.",
                                                                         "qas": [qa]}]}]}


GOOD_QA = {"id": "q1", "question": "Where is Paris?", "is_impossible": False,
           "answers": [{"text": "France", "answer_start": 12}]}


@pytest.mark.parametrize("patch,field", [
    ({"answers": "France"}, "answers"),                 # a string instead of a list: was a traceback
    ({"question": None}, "question"),                   # a null question: was a traceback
    ({"answers": [{"text": None}]}, "answers.0.text"),
    ({"id": 17}, "id"),
])
def test_squad_bad_fields(tmp_path, patch, field):
    f = tmp_path / "dev-v2.0.json"
    f.write_text(json.dumps(_squad({**GOOD_QA, **patch})))
    with pytest.raises(DataError) as ei:
        DATASETS.get("squad2").load(data_file=f)
    msg = str(ei.value)
    assert str(f) in msg and "data[0]" in msg and f"'paragraphs.0.qas.0.{field}'" in msg and "\n" not in msg


def test_hotpot_null_answer_is_not_the_gold_string_none(tmp_path):
    """Before: answer null became the gold answer "None"."""
    rec = {"_id": "h1", "question": "q?", "answer": None, "context": [["T", ["s1.", "s2."]]],
           "supporting_facts": [["T", 0]]}
    f = tmp_path / "hotpot_dev_distractor_v1.json"
    f.write_text(json.dumps([rec]))
    with pytest.raises(DataError, match=r"record 0 \(id 'h1'\): field 'answer' .*got null"):
        DATASETS.get("hotpotqa").load(data_file=f)


@pytest.mark.parametrize("patch,field", [
    ({"answer": ["x"]}, "answer"), ({"paragraphs": [{"title": "t"}]}, "paragraphs.0.paragraph_text"),
    ({"answerable": "yes"}, "answerable"),
])
def test_musique_bad_fields(tmp_path, patch, field):
    rec = {"id": "2hop__1_2", "question": "q?", "answer": "a", "answer_aliases": [],
           "paragraphs": [{"idx": 0, "title": "t", "paragraph_text": "a b", "is_supporting": True}], **patch}
    f = tmp_path / "musique_ans_v1.0_dev.jsonl"
    f.write_text(json.dumps(rec) + "\n")
    with pytest.raises(DataError, match=f"record 0 \\(id '2hop__1_2'\\): field '{field}'"):
        DATASETS.get("musique").load(data_file=f)


def test_cli_data_show_on_a_bad_file_is_one_line(tmp_path):
    f = tmp_path / "dev-v2.0.json"
    f.write_text(json.dumps(_squad({**GOOD_QA, "answers": "France"})))
    p = cli_inproc("data", "show", "squad2", "--data-file", str(f))
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: ") and "answers" in lines[0]


def test_real_slices_still_load(data_dir: Path):
    sizes = {n: len(DATASETS.get(n).load(data_dir=data_dir)) for n in ("squad2", "hotpotqa", "musique", "drop")}
    assert sizes == {"squad2": 6078, "hotpotqa": 200, "musique": 200, "drop": 624}
