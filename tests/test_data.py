"""Loaders on the real shared files and on small official-schema files written here."""

from __future__ import annotations

import gzip
import json

import pytest

from judgegap.data import DATASETS, load_dataset, stratified_sample
from judgegap.errors import DataError, JudgegapError
from tests.conftest import run_cli, write_json


def test_real_squad2(data_dir):
    items = load_dataset("squad2", data_dir=data_dir)
    assert len(items) == 6078 and sum(not it.answerable for it in items) == 3168
    un = next(it for it in items if not it.answerable)
    assert un.answers == () and un.metadata["plausible_answers"]


def test_real_hotpotqa_musique_drop(data_dir):
    hp = load_dataset("hotpotqa", data_dir=data_dir)
    assert len(hp) == 200 and {it.metadata["question_type"] for it in hp} == {"bridge", "comparison"}
    assert all(len(it.metadata["supporting_titles"]) >= 1 for it in hp)
    assert len(load_dataset("hotpotqa-ircot", data_dir=data_dir)) == 500
    mq = load_dataset("musique", data_dir=data_dir)
    assert len(mq) == 200 and {it.metadata["hops"] for it in mq} == {2, 3, 4}
    dr = load_dataset("drop", data_dir=data_dir)
    assert len(dr) == 624 and len({it.id for it in dr}) == 624      # the duplicated query id is kept, renamed
    types = {it.metadata["answer_type"] for it in dr}
    assert types == {"number", "date", "span", "spans"}
    multi = next(it for it in dr if it.metadata["answer_type"] == "spans")
    assert len(multi.gold_spans[0]) > 1


def test_sampling_is_deterministic_and_stratified(data_dir):
    a = load_dataset("squad2", data_dir=data_dir, n=200, seed=3)
    b = load_dataset("squad2", data_dir=data_dir, n=200, seed=3)
    c = load_dataset("squad2", data_dir=data_dir, n=200, seed=4)
    assert [x.id for x in a] == [x.id for x in b] != [x.id for x in c]
    frac = sum(not x.answerable for x in a) / 200
    assert abs(frac - 3168 / 6078) < 0.02
    assert stratified_sample(list(range(10)), None, 0) == list(range(10))


def _squad_doc(n=3):
    return {"version": "v2.0", "data": [{"title": "T", "paragraphs": [{"context": "Paris is in France.", "qas": [
        {"id": f"q{i}", "question": "Where is Paris?", "answers": [{"text": "France", "answer_start": 12}],
         "is_impossible": False} for i in range(n)]}]}]}


def test_small_official_files(tmp_path):
    write_json(tmp_path / "dev-v2.0.json", _squad_doc())
    assert len(load_dataset("squad2", data_dir=tmp_path)) == 3
    # gzipped, one folder down, JSON Lines: the hotpot official schema
    rec = {"_id": "h1", "question": "Q?", "answer": "yes", "type": "comparison", "level": "hard",
           "supporting_facts": [["A", 0]], "context": [["A", ["s1.", " s2."]], ["B", ["t1."]]]}
    (tmp_path / "hp").mkdir()
    with gzip.open(tmp_path / "hp" / "hotpot_dev_distractor_v1.json.gz", "wt") as fh:
        json.dump([rec], fh)
    [it] = load_dataset("hotpotqa", data_dir=tmp_path)
    assert it.context.startswith("A: s1. s2.") and it.answers == ("yes",)
    mus = {"id": "2hop__1_2", "question": "Q", "answer": "A", "answer_aliases": ["a"], "answerable": False,
           "paragraphs": [{"idx": 0, "title": "T", "paragraph_text": "x", "is_supporting": True}]}
    (tmp_path / "musique_full_v1.0_dev.jsonl").write_text(json.dumps(mus) + "\n")
    [m] = load_dataset("musique-full", data_dir=tmp_path)
    assert not m.answerable and m.metadata["hops"] == 2


def test_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match="no squad2 file"):
        DATASETS.get("squad2").load(data_dir=tmp_path)
    bad = tmp_path / "dev-v2.0.json"
    bad.write_text(json.dumps(_squad_doc())[:-20])
    with pytest.raises(DataError, match=r"dev-v2\.0\.json: not valid JSON"):
        load_dataset("squad2", data_dir=tmp_path)
    write_json(bad, {"data": [{"title": "x"}]})
    with pytest.raises(DataError, match=r"dev-v2\.0\.json: wrong schema"):
        load_dataset("squad2", data_dir=tmp_path)
    with pytest.raises(JudgegapError, match="unknown dataset 'nope'"):
        load_dataset("nope", data_dir=tmp_path)


@pytest.mark.parametrize("name", ["squad2", "hotpotqa", "musique", "drop"])
def test_cli_data_show_real(name, data_dir):
    p = run_cli("data", "show", name, "--n", "3", "--data-dir", str(data_dir))
    assert p.returncode == 0, p.stderr
    assert p.stdout.count("Q:") == 3


def test_cli_data_errors_are_one_line(tmp_path):
    p = run_cli("data", "show", "squad2", "--data-dir", str(tmp_path))
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and "no squad2 file" in p.stderr
    p = run_cli("data", "show", "nonesuch", "--data-dir", str(tmp_path))
    assert p.returncode == 1 and "unknown dataset 'nonesuch'" in p.stderr


def test_download_from_a_local_server(tmp_path, httpserver):
    httpserver.expect_request("/dev-v2.0.json").respond_with_json(_squad_doc(2))
    p = run_cli("data", "download", "squad2", "--data-dir", str(tmp_path), "--url", httpserver.url_for("/dev-v2.0.json"))
    assert p.returncode == 0, p.stderr
    assert len(load_dataset("squad2", data_dir=tmp_path)) == 2
    httpserver.expect_request("/broken").respond_with_data("{not json", status=200)
    p = run_cli("data", "download", "squad2", "--data-dir", str(tmp_path / "x"), "--url", httpserver.url_for("/broken"))
    assert p.returncode == 1 and "not valid JSON" in p.stderr
    assert not (tmp_path / "x" / "dev-v2.0.json").exists()
