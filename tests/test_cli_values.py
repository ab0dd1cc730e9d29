"""Numeric options and self-score scales: validated like config values, never silently clipped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import cli_inproc


def _log(path: Path, scores, outcomes=None) -> Path:
    lines = []
    for i, s in enumerate(scores):
        rec = {"id": f"r{i}", "timestamp": 1_700_000_000 + i * 3600, "self_score": s,
               "outcome": None if outcomes is None else outcomes[i]}
        lines.append(json.dumps(rec))
    path.write_text("\n".join(lines) + "\n")
    return path


def _one_line(p) -> str:
    lines = [x for x in p.stderr.strip().splitlines() if x.strip()]
    assert p.returncode != 0 and len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    return lines[0]


def test_monitor_refuses_a_log_on_another_scale(tmp_path):
    """Before: a 10-100 log was clipped to 10 everywhere and reported 'no drift' (exit 0)."""
    log = _log(tmp_path / "l.jsonl", [10 + (i * 37) % 91 for i in range(200)])
    line = _one_line(cli_inproc("monitor", str(log)))
    assert "outside the declared scale 1..10" in line and "--score-max" in line
    ok = cli_inproc("monitor", str(log), "--score-min", "10", "--score-max", "100", "--json")
    assert ok.returncode in (0, 3) and json.loads(ok.stdout)["n_out_of_range"] == 0


def test_monitor_counts_a_few_out_of_range_scores(tmp_path):
    scores = [1 + i % 10 for i in range(100)]
    scores[3] = 55
    scores[7] = -2
    out = cli_inproc("monitor", str(_log(tmp_path / "l.jsonl", scores)), "--json")
    assert json.loads(out.stdout)["n_out_of_range"] == 2


def test_route_refuses_a_log_on_another_scale(tmp_path):
    """Before: route clipped 10-100 scores and returned an infinite threshold."""
    log = _log(tmp_path / "l.jsonl", [10 + (i * 37) % 91 for i in range(100)], [i % 2 for i in range(100)])
    line = _one_line(cli_inproc("route", str(log), "--target-accuracy", "0.7"))
    assert "outside the declared scale" in line


@pytest.mark.parametrize("args,expect", [
    (("--target-accuracy", "1.5"), "--target-accuracy must be > 0 and <= 1, got 1.5"),
    (("--target-accuracy", "0"), "--target-accuracy must be > 0"),
    (("--target-escalation", "-0.1"), "--target-escalation must be >= 0"),
    (("--target-accuracy", "0.7", "--escalation-cost", "-1"), "--escalation-cost must be >= 0"),
    (("--target-accuracy", "0.7", "--folds", "1"), "--folds must be >= 2"),
])
def test_route_numeric_options(tmp_path, args, expect):
    log = _log(tmp_path / "l.jsonl", [1 + i % 10 for i in range(40)], [i % 2 for i in range(40)])
    p = cli_inproc("route", str(log), *args)
    assert p.returncode == 2 and expect in _one_line(p)


@pytest.mark.parametrize("args,expect", [
    (("--psi-threshold", "0"), "--psi-threshold must be > 0"),
    (("--min-window", "0"), "--min-window must be >= 1"),
    (("--baseline-windows", "0"), "--baseline-windows must be >= 1"),
    (("--score-min", "5", "--score-max", "5"), "--score-max must be above --score-min"),
])
def test_monitor_numeric_options(tmp_path, args, expect):
    log = _log(tmp_path / "l.jsonl", [1 + i % 10 for i in range(40)])
    assert expect in _one_line(cli_inproc("monitor", str(log), *args))
