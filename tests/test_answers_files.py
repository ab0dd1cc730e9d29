"""Two-stage judging: answers made elsewhere (lm-evaluation-harness --log_samples, inspect_ai logs,
predictions JSON) judged by configured models. The lm-eval and inspect files in
tests/fixtures/answers were written by the real tools (see make_fixtures.py there)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import cli_inproc

FIX = Path(__file__).parent / "fixtures" / "answers"
LM_EVAL = FIX / "lm_eval_samples_squad2.jsonl"
INSPECT_EVAL = FIX / "inspect_squad2.eval"
INSPECT_JSON = FIX / "inspect_squad2.json"


def test_lm_eval_log_samples_file_is_read_as_lm_eval_scored_it():
    from judgegap.data.answers import read_answers

    a = read_answers(LM_EVAL)
    assert a.format == "lm_eval" and a.source["tool"] == "lm-evaluation-harness"
    rows = [json.loads(line) for line in LM_EVAL.read_text().splitlines()]
    assert a.answers == {r["doc"]["id"]: r["filtered_resps"][0] for r in rows}
    assert len(a.answers) == 6 and a.problems == {}


@pytest.mark.parametrize("path", [INSPECT_EVAL, INSPECT_JSON], ids=["eval-zip-zstd", "json"])
def test_inspect_logs_give_what_inspect_ai_itself_reads(path):
    from judgegap.data.answers import read_answers

    a = read_answers(path)
    expected = json.loads((FIX / "inspect_squad2.expected.json").read_text())  # inspect_ai's read_eval_log
    assert a.format == "inspect" and a.answers == expected
    assert a.source["model"] == "openai-api/llamacpp/smollm2" and a.source["status"] == "success"


def _cfg(tmp_path: Path, data_dir: Path, models: list[dict], experiments=None, **extra) -> Path:
    cfg = {"name": "two-stage", "output_dir": str(tmp_path / "out"), "data_dir": str(data_dir),
           "bootstrap_resamples": 100, "datasets": [{"name": "squad2"}], "models": models,
           "experiments": experiments or [{"name": "asymmetry", "params": {"text_verdict": False}}], **extra}
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def test_real_llamacpp_judge_judges_lm_eval_and_inspect_answers_end_to_end(tmp_path, data_dir):
    """SmolLM2 through llama.cpp judges answers written by lm-eval and by inspect_ai; the run
    keeps exactly the items the files cover, records the answers verbatim, and pairs them
    (self-preference) with the judge's own answers."""
    cfg = _cfg(tmp_path, data_dir, [
        {"name": "smol", "backend": "llamacpp", "model": "smollm2-135m-instruct", "n_threads": 1},
        {"name": "lmeval", "backend": "file", "answers": str(LM_EVAL)},
        {"name": "inspect", "backend": "file", "answers": {"squad2": str(INSPECT_EVAL)}},
    ], experiments=[{"name": "asymmetry", "params": {"text_verdict": False}},
                    {"name": "pairwise", "params": {"self_pairs": True, "text_verdict": False}}])
    p = cli_inproc("run", str(cfg))
    assert p.returncode == 0, p.stderr
    out = tmp_path / "out"
    s = json.loads((out / "summary.json").read_text())
    asym = s["experiments"]["asymmetry"]["datasets"]["squad2"]["models"]
    assert set(asym) == {"smol", "lmeval", "inspect"}
    assert all(asym[m]["n_items"] == 6 for m in asym)
    from judgegap.data.answers import read_answers
    from judgegap.experiments.candidates import clean_answer
    from judgegap.store import Store

    st = Store.in_dir(out)
    gens = {(g["model"], g["item_id"]): g for g in st.records("asymmetry", "generation")}
    lm = read_answers(LM_EVAL).answers
    assert {iid for (m, iid) in gens if m == "lmeval"} == set(lm)
    for iid, text in lm.items():
        g = gens[("lmeval", iid)]
        assert g["raw_text"] == text and g["prediction"] == clean_answer(text) and g["template"] == "file"
    judged = {(j["judge"], j["author"]) for j in st.records("asymmetry", "judgment")}
    assert {("smol", "lmeval"), ("smol", "inspect"), ("smol", "smol")} <= judged
    assert not any(j == "lmeval" or j == "inspect" for j, _ in judged)  # file models never judge
    files = st.events("answers_files")[-1]
    assert files["lmeval/squad2"]["sha256"] == read_answers(LM_EVAL).sha256
    assert files["inspect/squad2"]["source"]["tool"] == "inspect_ai"
    st.close()


def _run_expect_error(tmp_path, cfg_path, *needles):
    p = cli_inproc("run", str(cfg_path))
    assert p.returncode != 0
    line = p.stderr.strip().splitlines()[-1]
    for n in needles:
        assert n in line, line
    assert not (tmp_path / "out").exists()  # nothing written
    return line


def test_a_file_model_named_as_judge_is_refused_at_load(tmp_path, data_dir):
    cfg = _cfg(tmp_path, data_dir, [{"name": "s", "backend": "scripted", "model": "span"},
                                    {"name": "lmeval", "backend": "file", "answers": str(LM_EVAL)}],
               experiments=[{"name": "asymmetry", "params": {"judges": ["s", "lmeval"], "text_verdict": False}}])
    _run_expect_error(tmp_path, cfg, "asymmetry", "lmeval", "log-probabilities")


def test_only_file_models_means_no_judge(tmp_path, data_dir):
    cfg = _cfg(tmp_path, data_dir, [{"name": "lmeval", "backend": "file", "answers": str(LM_EVAL)}])
    _run_expect_error(tmp_path, cfg, "asymmetry", "no judge")


def test_answers_sharing_no_id_with_the_dataset(tmp_path, data_dir):
    f = tmp_path / "preds.json"
    f.write_text(json.dumps({"nope-1": "x", "nope-2": "y"}))
    cfg = _cfg(tmp_path, data_dir, [{"name": "s", "backend": "scripted", "model": "span"},
                                    {"name": "mine", "backend": "file", "answers": str(f)}])
    _run_expect_error(tmp_path, cfg, "models[1] (mine).answers", "shares no id", "'nope-1'")


def test_file_model_without_answers_for_a_configured_dataset(tmp_path, data_dir):
    cfg = _cfg(tmp_path, data_dir, [{"name": "s", "backend": "scripted", "model": "span"},
                                    {"name": "m", "backend": "file", "answers": {"squad2": str(LM_EVAL)}}],
               datasets=[{"name": "squad2"}, {"name": "drop", "n": 3}])
    _run_expect_error(tmp_path, cfg, "models[1] (m)", "no answers for dataset drop")


@pytest.mark.parametrize("content,needle", [
    ({"a": 3}, "key 'a': a predictions file maps ids to answer strings, got int"),
    ([{"id": "a", "answer": "x"}, {"id": "a", "answer": "y"}], "record 1: id 'a' appears twice"),
    ([{"question": "q", "answer": "x"}], "record 0: no id field"),
    ([{"id": "a", "text": "x"}], "record 0: no answer field"),
    ([{"id": 1.5, "answer": "x"}], "the id must be a string or an integer, got float"),
], ids=["non-string", "conflicting-duplicate", "no-id", "no-answer", "float-id"])
def test_hand_made_predictions_edge_cases(tmp_path, content, needle):
    from judgegap.data.answers import read_answers
    from judgegap.errors import DataError

    f = tmp_path / "p.json"
    f.write_text(json.dumps(content))
    with pytest.raises(DataError) as e:
        read_answers(f)
    assert needle in str(e.value) and str(f) in str(e.value)


def test_predictions_formats_and_detection(tmp_path):
    from judgegap.data.answers import detect_format, read_answers

    d = tmp_path / "d.json"
    d.write_text(json.dumps({"q1": "Paris", "q2": ""}))
    jl = tmp_path / "r.jsonl"
    jl.write_text('{"id": "q1", "prediction": "Paris"}\n\n{"qid": 7, "response": "x"}\n')
    assert read_answers(d).answers == {"q1": "Paris", "q2": ""}
    assert read_answers(jl).answers == {"q1": "Paris", "7": "x"}
    assert detect_format(d) == detect_format(jl) == "predictions"
    assert detect_format(LM_EVAL) == "lm_eval" and detect_format(INSPECT_EVAL) == detect_format(INSPECT_JSON) == "inspect"


def test_lm_eval_non_generation_task_and_missing_doc_id(tmp_path):
    from judgegap.data.answers import read_answers
    from judgegap.errors import DataError

    row = json.loads(LM_EVAL.read_text().splitlines()[0])
    ll = tmp_path / "samples_ll.jsonl"
    ll.write_text(json.dumps({**row, "filtered_resps": [[-1.25, False]], "resps": [[[-1.25, False]]]}) + "\n")
    with pytest.raises(DataError, match="only generate_until tasks"):
        read_answers(ll)
    noid = tmp_path / "samples_noid.jsonl"
    noid.write_text(json.dumps({**row, "doc": {k: v for k, v in row["doc"].items() if k != "id"}}) + "\n")
    with pytest.raises(DataError, match="doc has no id field.*answers_id_field"):
        read_answers(noid)
    doc = {**row["doc"], "squad_key": row["doc"]["id"]}
    del doc["id"]
    custom = tmp_path / "samples_custom.jsonl"
    custom.write_text(json.dumps({**row, "doc": doc}) + "\n")
    assert read_answers(custom, id_field="squad_key").answers == {row["doc"]["id"]: row["filtered_resps"][0]}


def test_inspect_errored_samples_are_counted_not_dropped_silently(tmp_path):
    from judgegap.data.answers import read_answers

    log = json.loads(INSPECT_JSON.read_text())
    log["samples"][0]["error"] = {"message": "boom", "traceback": ""}
    log["samples"][1] = {**log["samples"][1], "epoch": 2}
    f = tmp_path / "log.json"
    f.write_text(json.dumps(log))
    a = read_answers(f)
    assert len(a.answers) == 4 and a.problems == {"errored_samples": 1, "later_epochs_ignored": 1}


def test_truncated_and_damaged_files(tmp_path):
    from judgegap.data.answers import read_answers
    from judgegap.errors import DataError

    t = tmp_path / "t.jsonl"
    t.write_text(LM_EVAL.read_text()[:500])
    with pytest.raises(DataError, match="line 1 is not valid JSON"):
        read_answers(t)
    z = tmp_path / "broken.eval"
    z.write_bytes(INSPECT_EVAL.read_bytes()[:4000])
    with pytest.raises(DataError, match=str(z.name)):
        read_answers(z)
    with pytest.raises(DataError, match="answers file not found"):
        read_answers(tmp_path / "missing.json")
