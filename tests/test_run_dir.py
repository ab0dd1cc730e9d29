"""Run directories: one config per run, one writer, only judgegap's files removed, status told.

Runs use the scripted backend (rule-based, no weights), so each CLI run takes seconds.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import call_cache_file, cli_inproc, run_then_kill_9


def _cfg(tmp_path: Path, data_dir: Path, n: int = 6, seed: int = 0, out: str = "out", exps=None,
         latency: float = 0.0, name: str = "c.yaml", **extra) -> Path:
    cfg = {"name": "rd", "output_dir": str(tmp_path / out), "data_dir": str(data_dir),
           "datasets": [{"name": "squad2", "n": n, "seed": seed}],
           "models": [{"name": "s", "backend": "scripted", "model": "span", "script": {"latency_s": latency}}],
           "experiments": exps or [{"name": "asymmetry", "params": {"text_verdict": False}}],
           "bootstrap_resamples": 100, **extra}
    p = tmp_path / name
    p.write_text(yaml.safe_dump(cfg))
    return p


def _one_line_error(p: subprocess.CompletedProcess) -> str:
    assert p.returncode != 0, p.stdout
    lines = [x for x in p.stderr.strip().splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    return lines[0]


def test_resume_with_changed_config_refuses_and_names_fields(tmp_path, data_dir):
    """Before: --resume after n 20 -> 5, seed 0 -> 1 reported n_items 25 (records of both configs)."""
    assert cli_inproc("run", str(_cfg(tmp_path, data_dir, n=20))).returncode == 0
    p = cli_inproc("run", str(_cfg(tmp_path, data_dir, n=5, seed=1)), "--resume")
    line = _one_line_error(p)
    assert "datasets[0].n: 20 -> 5" in line and "datasets[0].seed: 0 -> 1" in line
    assert "--overwrite" in line and "-o DIR" in line
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["experiments"]["asymmetry"]["datasets"]["squad2"]["models"]["s"]["n_items"] == 20
    # --overwrite with the new config: only the new config's records are summarised
    assert cli_inproc("run", str(_cfg(tmp_path, data_dir, n=5, seed=1)), "--overwrite").returncode == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["experiments"]["asymmetry"]["datasets"]["squad2"]["models"]["s"]["n_items"] == 5
    assert summary["schema_version"] >= 2 and summary["run_status"]["complete"] is True


def test_resume_same_config_and_cli_n_override_is_a_change(tmp_path, data_dir):
    cfg = _cfg(tmp_path, data_dir, n=6)
    assert cli_inproc("run", str(cfg)).returncode == 0
    assert cli_inproc("run", str(cfg), "--resume").returncode == 0
    line = _one_line_error(cli_inproc("run", str(cfg), "--resume", "--n", "4"))
    assert "datasets[0].n: 6 -> 4" in line


def test_resume_without_a_run_refuses(tmp_path, data_dir):
    line = _one_line_error(cli_inproc("run", str(_cfg(tmp_path, data_dir)), "--resume"))
    assert "holds no judgegap run to resume" in line
    assert not (tmp_path / "out" / "judgegap.sqlite").exists()


def test_second_writer_is_refused_and_overwrite_cannot_delete_a_live_run(tmp_path, data_dir):
    cfg = _cfg(tmp_path, data_dir, n=40, latency=0.05)
    proc = subprocess.Popen([sys.executable, "-m", "judgegap.cli", "run", str(cfg)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    db = tmp_path / "out" / "judgegap.sqlite"
    deadline = time.time() + 60
    while not db.exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    try:
        for extra in ((), ("--overwrite",), ("--resume",)):
            line = _one_line_error(cli_inproc("run", str(cfg), *extra))
            assert "in use by another judgegap process" in line and f"pid {proc.pid}" in line
        line = _one_line_error(cli_inproc("report", str(tmp_path / "out")))
        assert "in use by another judgegap process" in line
    finally:
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["experiments"]["asymmetry"]["datasets"]["squad2"]["models"]["s"]["n_items"] == 40


def test_kill_9_marks_the_run_interrupted_and_report_says_so(tmp_path, data_dir):
    cfg = _cfg(tmp_path, data_dir, n=40, latency=0.05)
    db = tmp_path / "out" / "judgegap.sqlite"
    run_then_kill_9(["run", str(cfg)], min_calls=20, timeout=60)
    p = cli_inproc("report", str(tmp_path / "out"))
    assert p.returncode == 0, p.stderr
    assert "interrupted" in p.stderr and "--resume" in p.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["run_status"]["status"] == "interrupted" and summary["run_status"]["complete"] is False
    html = (tmp_path / "out" / "report.html").read_text()
    assert 'id="run-status"' in html and "interrupted" in html
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT status FROM runs ORDER BY run_id DESC LIMIT 1").fetchone()[0] == "interrupted"
    # --resume completes it; then the report has no banner
    assert cli_inproc("run", str(cfg), "--resume").returncode == 0
    assert 'id="run-status"' not in (tmp_path / "out" / "report.html").read_text()


def test_overwrite_removes_only_files_judgegap_wrote(tmp_path, data_dir):
    out = tmp_path / "out"
    (out / "figures").mkdir(parents=True)
    (out / "figures" / "mine.png").write_bytes(b"user figure")
    (out / "notes.txt").write_text("user notes")
    cfg = _cfg(tmp_path, data_dir)
    assert cli_inproc("run", str(cfg)).returncode == 0
    assert cli_inproc("run", str(cfg), "--overwrite").returncode == 0
    assert (out / "figures" / "mine.png").read_bytes() == b"user figure"
    assert (out / "notes.txt").read_text() == "user notes"
    assert (out / "summary.json").is_file()


def test_overwrite_of_a_dir_that_never_held_a_run_keeps_its_figures(tmp_path, data_dir):
    out = tmp_path / "out"
    (out / "figures").mkdir(parents=True)
    (out / "figures" / "a.png").write_bytes(b"x")
    assert cli_inproc("run", str(_cfg(tmp_path, data_dir)), "--overwrite").returncode == 0
    assert (out / "figures" / "a.png").read_bytes() == b"x"


def test_users_own_summary_json_is_never_replaced(tmp_path, data_dir):
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.json").write_text('{"mine": true}')
    for extra in ((), ("--overwrite",)):
        line = _one_line_error(cli_inproc("run", str(_cfg(tmp_path, data_dir)), *extra))
        assert "did not write (summary.json)" in line
    assert json.loads((out / "summary.json").read_text()) == {"mine": True}
    assert not (out / "judgegap.sqlite").exists()


def test_second_experiment_typo_fails_before_any_model_call(tmp_path, data_dir):
    """Before: params of the 2nd experiment were checked only when it started (after calls were made)."""
    exps = [{"name": "asymmetry"}, {"name": "selfscore", "params": {"n_binz": 10}}]
    p = cli_inproc("run", str(_cfg(tmp_path, data_dir, exps=exps)))
    line = _one_line_error(p)
    assert p.returncode == 2 and "experiments[1] (selfscore).params.n_binz" in line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("exps,expect", [
    ([{"name": "pairwise", "params": {"self_pairs": True}}], "needs the asymmetry experiment earlier"),
    ([{"name": "ge_consistency"}], "needs the asymmetry or pairwise experiment earlier"),
    ([{"name": "attention"}], "needs attention weights (the hf backend), which model s (backend scripted)"),
    ([{"name": "asymmetry", "params": {"judges": ["nobody"]}}], "params.judges: unknown model(s) nobody"),
    ([{"name": "selfscore", "params": {"compare": ["s", "x"]}}], "params.compare: unknown model(s) x"),
])
def test_dependencies_and_capabilities_checked_at_load(tmp_path, data_dir, exps, expect):
    p = cli_inproc("run", str(_cfg(tmp_path, data_dir, exps=exps)))
    assert p.returncode == 2 and expect in _one_line_error(p)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("models,expect", [
    ([{"name": "m", "model": "no-such-model"}], "models[0] (m): unknown model 'no-such-model'"),
    ([{"name": "m", "model": "smollm2-135m-instruct", "batch_size": 0}], "models[0].batch_size: must be"),
    ([{"name": "m", "model": "smollm2-135m-instruct", "batch_size": -3}], "models[0].batch_size: must be"),
    ([{"name": "m", "model": "/nowhere/x.gguf"}], "model file not found"),
])
def test_bad_model_fails_before_the_store_exists(tmp_path, data_dir, models, expect):
    cfg = yaml.safe_load(_cfg(tmp_path, data_dir).read_text())
    cfg["models"] = models
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    assert expect in _one_line_error(cli_inproc("run", str(tmp_path / "c.yaml")))
    assert not (tmp_path / "out" / "judgegap.sqlite").exists()
    # the corrected config then runs (no "already holds a run")
    assert cli_inproc("run", str(_cfg(tmp_path, data_dir))).returncode == 0


def test_corrupt_store_is_refused_before_any_work(tmp_path, data_dir):
    cfg = _cfg(tmp_path, data_dir)
    assert cli_inproc("run", str(cfg)).returncode == 0
    db = tmp_path / "out" / "judgegap.sqlite"
    with sqlite3.connect(db) as c:
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw = bytearray(db.read_bytes())
    page = 4096
    assert len(raw) > 3 * page
    raw[2 * page + 8: 2 * page + 200] = os.urandom(192)
    db.write_bytes(bytes(raw))
    for args in (("run", str(cfg), "--resume"), ("report", str(tmp_path / "out"))):
        line = _one_line_error(cli_inproc(*args))
        assert "judgegap.sqlite is damaged" in line and "--overwrite" in line


@pytest.mark.parametrize("n,expect", [("-1", "--n"), ("0", "--n")])
def test_cli_n_is_validated_like_the_config(tmp_path, data_dir, n, expect):
    p = cli_inproc("run", str(_cfg(tmp_path, data_dir)), "--n", n)
    assert p.returncode == 2 and "datasets[0].n" in _one_line_error(p)
    assert not (tmp_path / "out").exists()


def test_n_larger_than_the_dataset_is_reported_truthfully(tmp_path, data_dir):
    cfg = yaml.safe_load(_cfg(tmp_path, data_dir).read_text())
    cfg["datasets"] = [{"name": "musique", "n": 5000}]
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    p = cli_inproc("run", str(tmp_path / "c.yaml"))
    assert p.returncode == 0, p.stderr
    assert "musique: n=5000 requested, 200 available" in p.stderr
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert s["datasets"]["musique"] == {"requested": 5000, "n": 200}


def test_call_cache_outlives_the_run_dir_and_is_shared_by_two_processes(tmp_path, data_dir):
    """Two runs in different output dirs at once, one cache file: both complete, the cache is
    intact, and a third run in a new dir makes no model call at all."""
    a = _cfg(tmp_path, data_dir, n=30, out="a", latency=0.01, name="a.yaml")
    b = _cfg(tmp_path, data_dir, n=30, out="b", latency=0.01, name="b.yaml")
    procs = [subprocess.Popen([sys.executable, "-m", "judgegap.cli", "run", str(c)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for c in (a, b)]
    for p in procs:
        _, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
    with sqlite3.connect(call_cache_file()) as c:
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        n = c.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
    assert n == 30 + 30 * 3  # one answer per item, judgements of own answer + gold + wrong span (shared)
    c = _cfg(tmp_path, data_dir, n=30, out="c", name="c.yaml")
    assert cli_inproc("run", str(c)).returncode == 0
    summary = json.loads((tmp_path / "c" / "summary.json").read_text())
    assert summary["run"]["cache_misses"] == 0 and summary["run"]["cache_hits"] > 0
    assert summary["run"]["backends"]["s"]["calls"] == {"generate": 0, "score_choices": 0, "top_logprobs": 0}
    sa = json.loads((tmp_path / "a" / "summary.json").read_text())["experiments"]
    assert sa == summary["experiments"]


def test_resume_after_an_upgrade_that_added_config_fields(tmp_path, data_dir):
    """A run stored by an older judgegap (its config lacks fields added since) resumes: the new
    fields' defaults are not a change."""
    cfg = _cfg(tmp_path, data_dir, n=5)
    assert cli_inproc("run", str(cfg)).returncode == 0
    db = tmp_path / "out" / "judgegap.sqlite"
    with sqlite3.connect(db) as c:
        stored = json.loads(c.execute("SELECT config_json FROM runs").fetchone()[0])
        for m in stored["models"]:
            m.pop("n_threads", None)
            m.pop("cache_ram_mib", None)
        stored.pop("call_cache", None)
        c.execute("UPDATE runs SET config_json=?", (json.dumps(stored),))
    p = cli_inproc("run", str(cfg), "--resume")
    assert p.returncode == 0, p.stderr
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert s["experiments"]["asymmetry"]["datasets"]["squad2"]["models"]["s"]["n_items"] == 5


def test_dataset_option_runs_one_dataset_and_the_whole_config_then_repeats_none_of_its_calls(tmp_path, data_dir):
    """``--dataset`` splits a long job: the part runs only its dataset, and the later run of the whole
    config gets every one of that dataset's calls from the call cache."""
    cfg = yaml.safe_load(_cfg(tmp_path, data_dir, n=5).read_text())
    cfg["datasets"] = [{"name": "squad2", "n": 5, "seed": 0}, {"name": "drop", "n": 4, "seed": 0}]
    (tmp_path / "two.yaml").write_text(yaml.safe_dump(cfg))
    p = cli_inproc("run", str(tmp_path / "two.yaml"), "--dataset", "drop", "-o", str(tmp_path / "part"))
    assert p.returncode == 0, p.stderr
    part = json.loads((tmp_path / "part" / "summary.json").read_text())
    assert set(part["experiments"]["asymmetry"]["datasets"]) == {"drop"}
    assert part["run"]["cache_misses"] > 0
    assert cli_inproc("run", str(tmp_path / "two.yaml"), "-o", str(tmp_path / "whole")).returncode == 0
    whole = json.loads((tmp_path / "whole" / "summary.json").read_text())
    assert set(whole["experiments"]["asymmetry"]["datasets"]) == {"squad2", "drop"}
    assert whole["experiments"]["asymmetry"]["datasets"]["drop"] == part["experiments"]["asymmetry"]["datasets"]["drop"]
    # the whole run's misses are squad2's alone: 5 answers + 15 judgements
    assert whole["run"]["cache_misses"] == 5 + 5 * 3 and whole["run"]["cache_hits"] >= part["run"]["cache_misses"]


def test_dataset_option_names_an_unknown_dataset_in_one_line(tmp_path, data_dir):
    p = cli_inproc("run", str(_cfg(tmp_path, data_dir)), "--dataset", "musique")
    line = _one_line_error(p)
    assert "--dataset 'musique'" in line and "squad2" in line
    assert not (tmp_path / "out").exists()


def _calls_in_order(cache: Path) -> list[tuple[str, str, str]]:
    """(method, question, the prompt's assistant prefix) of every cached call in the order it was made."""
    import re

    out = []
    with sqlite3.connect(cache) as c:
        for method, req in c.execute("SELECT method, request_json FROM calls ORDER BY rowid"):
            prompt = json.loads(req)["prompt"]
            user = [m[1] for m in prompt["messages"] if m[0] == "user"][0]
            out.append((method, re.search(r"Question: (.*)", user).group(1), prompt["assistant_prefix"]))
    return out


@pytest.mark.parametrize("text_verdict", [False, True])
def test_prefix_cache_backend_gets_each_items_calls_of_every_experiment_back_to_back(tmp_path, data_dir,
                                                                                     text_verdict):
    """On a backend with a prefix cache (llamacpp) item i's answer, judgements, C-MASK and self-score
    run back to back across the two experiments, so the passage is evaluated once per item, not once
    per experiment. The calls and the numbers are exactly those of the model-by-model order.
    Before: selfscore's self-score prompts ran after every item of asymmetry, each re-evaluating its passage."""
    v2 = {"generate_template": "qa_generate@2"}
    exps = [{"name": "asymmetry", "params": {"text_verdict": text_verdict, "ablations": ["c_mask"],
                                             "judge_template": "qa_judge@2", **v2}},
            {"name": "selfscore", "params": {"external_judges": "none", "text_score": False,
                                             "score_template": "self_score@2", **v2}}]
    runs = {}
    for cached in (True, False):
        cfg = yaml.safe_load(_cfg(tmp_path, data_dir, n=5, out=f"o{cached}", exps=exps).read_text())
        cfg["models"][0]["script"]["prefix_cache"] = cached
        cfg["call_cache"] = str(tmp_path / f"calls-{cached}.sqlite")
        (tmp_path / f"c{cached}.yaml").write_text(yaml.safe_dump(cfg))
        p = cli_inproc("run", str(tmp_path / f"c{cached}.yaml"))
        assert p.returncode == 0, p.stderr
        runs[cached] = (_calls_in_order(tmp_path / f"calls-{cached}.sqlite"),
                        json.loads((tmp_path / f"o{cached}" / "summary.json").read_text())["experiments"])
    (item_major, s_item), (model_major, s_model) = runs[True], runs[False]
    assert sorted(item_major) == sorted(model_major) and s_item == s_model
    per_item = 1 + 3 + int(text_verdict) + 1 + 1  # answer, 3 judgements, text verdict, C-MASK, self-score
    assert len(item_major) == 5 * per_item
    questions = [q for _, q, _ in item_major]
    blocks = [questions[k:k + per_item] for k in range(0, len(questions), per_item)]
    assert all(len(set(b)) == 1 for b in blocks) and len({b[0] for b in blocks}) == 5, questions
    assert [t for _, _, t in item_major[:per_item]] == ["Answer:"] + ["Verdict:"] * (per_item - 2) + ["Score:"]
    # model by model, every self-score comes after all of asymmetry's calls
    tasks = [t for _, _, t in model_major]
    assert tasks.index("Score:") == len(tasks) - 5


def test_judge_pairs_command_runs_a_pairwise_config(tmp_path, data_dir):
    """``judgegap judge-pairs`` is ``run`` for configs with the pairwise experiment (it calls ``run``
    directly, so every ``run`` option must have a plain default there)."""
    cfg = _cfg(tmp_path, data_dir, exps=[{"name": "pairwise", "params": {"text_verdict": False}}])
    d = yaml.safe_load(cfg.read_text())
    d["datasets"] = [{"name": "pandalm", "n": 3}]
    cfg.write_text(yaml.safe_dump(d))
    p = cli_inproc("judge-pairs", str(cfg), "--dry-run")
    assert p.returncode == 0 and "would start a new run" in p.stdout, p.stderr
    assert not (tmp_path / "out").exists()
    p = cli_inproc("judge-pairs", str(cfg))
    assert p.returncode == 0, p.stderr
    assert "pandalm" in json.loads((tmp_path / "out" / "summary.json").read_text())["experiments"]["pairwise"]["datasets"]


@pytest.mark.parametrize("experiment", ["asymmetry", "selfscore"])
def test_prefix_cache_judges_make_their_cross_model_judgements_while_the_passage_is_cached(tmp_path, data_dir,
                                                                                           experiment):
    """Two models on prefix-cache backends judging each other: each model's calls on item i — its
    answer, its judgements of its own answer (asymmetry: and of the gold and the wrong span; selfscore:
    its self-score), and of the OTHER model's answer — run back to back, so the cross-model judgement
    reuses the passage. Same calls and numbers as model by model. Before: the cross-model judgements
    (selfscore: the external judges' scores) ran after every item, each on a cold passage."""
    params = {"asymmetry": {"text_verdict": False, "judge_template": "qa_judge@2"},
              "selfscore": {"text_score": False, "external_judges": "all", "score_template": "self_score@2"}}
    exps = [{"name": experiment, "params": {"generate_template": "qa_generate@2", **params[experiment]}}]
    runs = {}
    for cached in (True, False):
        cfg = yaml.safe_load(_cfg(tmp_path, data_dir, n=4, out=f"o{cached}", exps=exps).read_text())
        cfg["models"] = [{"name": n, "backend": "scripted", "model": b, "script": {"prefix_cache": cached}}
                         for n, b in (("a", "span"), ("b", "abstain"))]
        cfg["call_cache"] = str(tmp_path / f"calls-{cached}.sqlite")
        (tmp_path / f"c{cached}.yaml").write_text(yaml.safe_dump(cfg))
        p = cli_inproc("run", str(tmp_path / f"c{cached}.yaml"))
        assert p.returncode == 0, p.stderr
        with sqlite3.connect(tmp_path / f"calls-{cached}.sqlite") as c:
            models = [m for (m,) in c.execute("SELECT model FROM calls ORDER BY rowid")]
        calls = _calls_in_order(tmp_path / f"calls-{cached}.sqlite")
        runs[cached] = ({m: [x for x, mm in zip(calls, models) if mm == m] for m in set(models)},
                        json.loads((tmp_path / f"o{cached}" / "summary.json").read_text())["experiments"])
    (item_major, s_item), (model_major, s_model) = runs[True], runs[False]
    assert s_item == s_model and sorted(item_major) == ["a", "b"]

    def item_blocks(calls: list[tuple[str, str, str]]) -> bool:
        """Each item's calls form one contiguous run (a call identical to another — e.g. the other model's
        answer equal to the gold — is one cache row)."""
        questions = [q for _, q, _ in calls]
        runs_ = [q for k, q in enumerate(questions) if k == 0 or q != questions[k - 1]]
        return len(runs_) == len(set(runs_)) == 4

    for m, calls in item_major.items():
        assert sorted(calls) == sorted(model_major[m]) and len(calls) >= 4 * 3, calls
        assert item_blocks(calls), (m, calls)
        assert not item_blocks(model_major[m])  # model by model, the cross-model judgements come last


def test_self_agreement_scores_each_items_candidates_back_to_back(tmp_path, data_dir):
    """self_agreement scores every candidate a judge saw (its own answer, the other model's, the gold,
    the wrong span) as a continuation of the item's answer prompt: the same prompt for all of an item's
    candidates, so on a prefix-cache backend only the candidate's tokens are new when they come back to
    back. A guard: asymmetry writes a judge's records item by item, and self_agreement must keep that
    order (sorting them by author would put a cold passage before every call)."""
    exps = [{"name": "asymmetry", "params": {"text_verdict": False, "generate_template": "qa_generate@2",
                                             "judge_template": "qa_judge@2"}},
            {"name": "self_agreement", "params": {"generate_template": "qa_generate@2"}}]
    cfg = yaml.safe_load(_cfg(tmp_path, data_dir, n=4, exps=exps).read_text())
    cfg["models"] = [{"name": n, "backend": "scripted", "model": b, "script": {"prefix_cache": True}}
                     for n, b in (("a", "span"), ("b", "abstain"))]
    cfg["call_cache"] = str(tmp_path / "calls.sqlite")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    p = cli_inproc("run", str(tmp_path / "c.yaml"))
    assert p.returncode == 0, p.stderr
    with sqlite3.connect(tmp_path / "calls.sqlite") as c:
        models = [m for (m,) in c.execute("SELECT model FROM calls ORDER BY rowid")]
    calls = _calls_in_order(tmp_path / "calls.sqlite")
    for m in ("a", "b"):
        questions = [q for (method, q, prefix), mm in zip(calls, models)
                     if mm == m and method == "score_choices" and prefix == "Answer:"]
        assert len(questions) >= 4 * 3, questions  # own, other's, gold, wrong span (identical ones are one row)
        blocks = [q for k, q in enumerate(questions) if k == 0 or q != questions[k - 1]]
        assert len(blocks) == len(set(blocks)) == 4, (m, questions)


def test_a_model_that_fails_to_load_leaves_no_run_behind(tmp_path, data_dir):
    """A fresh run whose model cannot be loaded (here an unknown scripted behaviour; in real life a GGUF
    llama.cpp cannot load or a server that never answers) has done nothing: it used to leave a store with
    a failed run, and the corrected config was then refused ('already holds a run')."""
    cfg = yaml.safe_load(_cfg(tmp_path, data_dir, n=3).read_text())
    cfg["models"][0]["model"] = "no-such-behaviour"
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(cfg))
    p = cli_inproc("run", str(tmp_path / "bad.yaml"))
    assert p.returncode != 0 and p.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "no-such-behaviour" in p.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "out").exists()
    # an existing directory of the user's is kept, with nothing of ours left in it
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    assert cli_inproc("run", str(tmp_path / "bad.yaml"), "-o", str(tmp_path / "mine")).returncode != 0
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["notes.txt"]
    # the corrected config then runs in the same place, without --overwrite
    assert cli_inproc("run", str(_cfg(tmp_path, data_dir, n=3))).returncode == 0



def test_dry_run_checks_what_the_run_checks_and_writes_nothing(tmp_path, data_dir):
    """``run --dry-run`` prints the plan (items per dataset after filters, models, each experiment's
    needs) and exits 0 with no output dir and no call cache made; on a directory the run would refuse
    it refuses with the run's own line, and after a run it accepts --resume of the same config."""
    cfg = _cfg(tmp_path, data_dir, n=6, exps=[{"name": "asymmetry", "params": {"text_verdict": False}},
                                               {"name": "selfscore", "params": {"text_score": False}}])
    p = cli_inproc("run", str(cfg), "--dry-run")
    assert p.returncode == 0, p.stderr
    assert re.search(r"squad2\s*│\s*6\s*│\s*6\s*│", p.stdout), p.stdout  # requested, items
    assert "score_choices" in p.stdout and "selfscore" in p.stdout and "would start a new run" in p.stdout
    assert not (tmp_path / "out").exists() and not call_cache_file().exists()
    # a data problem is the run's one line, before anything
    bad = _cfg(tmp_path, tmp_path / "no-data", name="bad.yaml")
    line = _one_line_error(cli_inproc("run", str(bad), "--dry-run"))
    assert "squad2" in line and not (tmp_path / "out").exists()
    # after a real run: the same refusals as the run, and --resume is accepted
    assert cli_inproc("run", str(cfg)).returncode == 0
    real = _one_line_error(cli_inproc("run", str(cfg)))
    assert _one_line_error(cli_inproc("run", str(cfg), "--dry-run")) == real
    p = cli_inproc("run", str(cfg), "--dry-run", "--resume")
    assert p.returncode == 0 and "would resume the run in" in p.stdout, p.stderr
    line = _one_line_error(cli_inproc("run", str(cfg), "--dry-run", "--resume", "--n", "4"))
    assert "datasets[0].n: 6 -> 4" in line
    before = sorted(x.name for x in (tmp_path / "out").iterdir())
    p = cli_inproc("run", str(cfg), "--dry-run", "--overwrite")
    assert p.returncode == 0 and "would discard and restart" in p.stdout
    assert sorted(x.name for x in (tmp_path / "out").iterdir()) == before  # nothing removed by a dry run
