"""Whole runs through the CLI on a tiny model: outputs, bad input, and kill -9 + --resume."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import yaml

from tests.conftest import call_cache_file, run_cli, run_then_kill_9


def _config(tmp_path: Path, model_dir: Path, data_dir: Path, n: int, out: str = "out", **extra) -> Path:
    cfg = {
        "name": "tiny", "output_dir": str(tmp_path / out), "data_dir": str(data_dir),
        "datasets": [{"name": "squad2", "n": n}],
        "models": [{"name": "tiny-a", "model": str(model_dir), "generation": {"max_new_tokens": 6}},
                   {"name": "tiny-b", "model": str(model_dir), "chat_template": "never",
                    "generation": {"max_new_tokens": 6}}],
        "experiments": [{"name": "asymmetry", "params": {"text_verdict": True}}],
        **extra,
    }
    p = tmp_path / "config.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def test_full_run_writes_every_output(tmp_path, tiny_model, data_dir):
    cfg = _config(tmp_path, tiny_model, data_dir, n=8)
    p = run_cli("run", str(cfg))
    assert p.returncode == 0, p.stderr
    out = tmp_path / "out"
    for f in ("judgegap.sqlite", "results.jsonl", "summary.json", "report.html"):
        assert (out / f).is_file()
    summary = json.loads((out / "summary.json").read_text())
    asym = summary["experiments"]["asymmetry"]["datasets"]["squad2"]
    assert set(asym["models"]) == {"tiny-a", "tiny-b"}
    assert set(asym["matrix"]) == {"tiny-a", "tiny-b"} and set(asym["matrix"]["tiny-a"]) == {"tiny-a", "tiny-b"}
    m = asym["models"]["tiny-a"]
    assert m["generation"]["accuracy"]["n"] == 8 and "gap_balanced_set" in m and "verdict" in m
    assert m["self_judge_text"]["n_parsed"] + m["self_judge_text"]["n_unparsed"] == 8
    assert "self_preference" in m or m["self_judge"]["accuracy"]["n"] == 8
    lines = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    # one line per item x model (generate) and per item x judge x author (2 models + gold + wrong span)
    assert sum(r["kind"] == "generation" for r in lines) == 16
    assert sum(r["kind"] == "judgment" for r in lines) == 8 * 2 * 4
    assert summary["config"]["models"][0]["model"] == str(tiny_model) and summary["env"]["packages"]["torch"]
    # rebuilding the report touches no model: same numbers from the store alone
    before = (out / "summary.json").read_text()
    p2 = run_cli("report", str(out))
    assert p2.returncode == 0, p2.stderr
    assert json.loads(before)["experiments"] == json.loads((out / "summary.json").read_text())["experiments"]
    # a second run without --resume refuses to mix results
    p3 = run_cli("run", str(cfg))
    assert p3.returncode == 1 and "--resume" in p3.stderr


def test_kill_9_then_resume_repeats_no_completed_call(tmp_path, tiny_model, data_dir):
    cfg = _config(tmp_path, tiny_model, data_dir, n=30)
    db = call_cache_file()
    run_then_kill_9(["run", str(cfg)], min_calls=20)
    with sqlite3.connect(db) as c:
        before = dict(c.execute("SELECT key, created_at FROM calls").fetchall())
    assert 20 <= len(before)
    p = run_cli("run", str(cfg), "--resume")
    assert p.returncode == 0, p.stderr
    with sqlite3.connect(db) as c:
        after = dict(c.execute("SELECT key, created_at FROM calls").fetchall())
    with sqlite3.connect(tmp_path / "out" / "judgegap.sqlite") as c:
        runs = c.execute("SELECT status FROM runs ORDER BY run_id").fetchall()
    assert len(after) > len(before)
    assert all(after[k] == v for k, v in before.items()), "a completed call was made again"
    assert runs[-1][0] == "completed"
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["run"]["cache_hits"] >= len(before)


@pytest.mark.parametrize("mutate, message", [
    (lambda c: c["models"][0].update(backend="nope"), "models[0].backend: unknown backend 'nope'"),
    (lambda c: c["datasets"][0].update(n=0), "datasets[0].n: Input should be greater than or equal to 1"),
    (lambda c: c.update(colour="blue"), "colour: Extra inputs are not permitted"),
    (lambda c: c["datasets"][0].update(name="nonesuch"), "unknown dataset 'nonesuch'"),
    (lambda c: c["experiments"][0].update(name="nonesuch"), "unknown experiment 'nonesuch'"),
])
def test_invalid_config_is_one_line_exit_2(tmp_path, tiny_model, data_dir, mutate, message):
    cfgp = _config(tmp_path, tiny_model, data_dir, n=2)
    cfg = yaml.safe_load(cfgp.read_text())
    mutate(cfg)
    cfgp.write_text(yaml.safe_dump(cfg))
    p = run_cli("run", str(cfgp))
    assert p.returncode == 2, p.stderr
    assert message in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_bad_inputs_leave_nothing_behind(tmp_path, tiny_model, data_dir):
    p = run_cli("run", str(tmp_path / "missing.yaml"))
    assert p.returncode == 2 and "config file not found" in p.stderr
    (tmp_path / "bad.yaml").write_text("datasets: [\n")
    p = run_cli("run", str(tmp_path / "bad.yaml"))
    assert p.returncode == 2 and "not valid YAML" in p.stderr
    # missing data file
    cfg = _config(tmp_path, tiny_model, tmp_path / "empty-data", n=2)
    (tmp_path / "empty-data").mkdir()
    p = run_cli("run", str(cfg))
    assert p.returncode == 1 and "no squad2 file" in p.stderr and not (tmp_path / "out").exists()
    # unknown model path
    cfg = _config(tmp_path, tmp_path / "no-model-here", data_dir, n=2)
    p = run_cli("run", str(cfg))
    assert p.returncode == 1 and "unknown model" in p.stderr and "Traceback" not in p.stderr
    # unwritable output dir (a path below a regular file fails even for root)
    (tmp_path / "afile").write_text("x")
    cfg = _config(tmp_path, tiny_model, data_dir, n=2, out="afile/out")
    p = run_cli("run", str(cfg))
    assert p.returncode == 1 and "not writable" in p.stderr and len(p.stderr.strip().splitlines()) == 1
