"""Model calls move between machines: `store export --table calls` on one, `store import-calls` on the
other, and a run there repeats none of them (a long CPU job can continue on another machine)."""

from __future__ import annotations

import gzip
import json
import sqlite3
from pathlib import Path

import yaml

from tests.conftest import cli_inproc


def _cfg(tmp_path: Path, data_dir: Path, out: str, n: int = 4) -> Path:
    cfg = {"name": "transfer", "output_dir": str(tmp_path / out), "data_dir": str(data_dir), "bootstrap_resamples": 100,
           "datasets": [{"name": "squad2", "n": n, "seed": 0}],
           "models": [{"name": "s", "backend": "scripted", "model": "span"},
                      {"name": "g", "backend": "scripted", "model": "constant", "script": {"answer": "1990"}}],
           "experiments": [{"name": "asymmetry", "params": {"text_verdict": False}}]}
    p = tmp_path / f"{out}.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def test_exported_calls_let_a_run_on_a_fresh_cache_repeat_none_of_them(tmp_path, data_dir, monkeypatch):
    first = tmp_path / "machine-a.sqlite"
    monkeypatch.setenv("JUDGEGAP_CALL_CACHE", str(first))
    assert cli_inproc("run", str(_cfg(tmp_path, data_dir, "a"))).returncode == 0
    shard = tmp_path / "s.jsonl.gz"
    p = cli_inproc("store", "export", str(tmp_path / "a"), "--table", "calls", "--model", "s",
                   "--without-requests", "--out", str(shard))
    assert p.returncode == 0, p.stderr
    nobody = tmp_path / "nobody.jsonl"
    p = cli_inproc("store", "export", str(tmp_path / "a"), "--table", "calls", "--model", "nobody", "--out", str(nobody))
    assert p.returncode != 0 and "no cached call of a model named 'nobody'" in p.stderr and not nobody.exists()
    rows = [json.loads(x) for x in gzip.open(shard, "rt")]
    with sqlite3.connect(first) as c:
        n_s = c.execute("SELECT COUNT(*) FROM calls WHERE model='s'").fetchone()[0]
    assert len(rows) == n_s > 0 and {r["model"] for r in rows} == {"s"}
    assert all("passage" not in json.dumps(r["request"]).lower() and "omitted" in r["request"] for r in rows)

    second = tmp_path / "machine-b.sqlite"  # another machine: an empty cache
    monkeypatch.setenv("JUDGEGAP_CALL_CACHE", str(second))
    p = cli_inproc("store", "import-calls", str(shard))
    assert p.returncode == 0, p.stderr
    assert f"imported {n_s} calls" in p.stdout
    assert "imported 0 calls" in cli_inproc("store", "import-calls", str(shard)).stdout  # idempotent
    assert cli_inproc("run", str(_cfg(tmp_path, data_dir, "b"))).returncode == 0
    a = json.loads((tmp_path / "a" / "summary.json").read_text())
    b = json.loads((tmp_path / "b" / "summary.json").read_text())
    # model s's calls all came from the shard; only g's calls (and g judging s's answers) were made here
    with sqlite3.connect(second) as c:
        made_here = c.execute("SELECT COUNT(*) FROM calls WHERE model='s' AND request_json NOT LIKE '%omitted%'"
                              ).fetchone()[0]
    assert made_here == 0
    assert b["run"]["cache_hits"] == n_s and b["run"]["cache_misses"] == a["run"]["cache_misses"] - n_s
    assert b["experiments"]["asymmetry"]["datasets"] == a["experiments"]["asymmetry"]["datasets"]


def test_an_imported_response_is_exactly_the_exported_one(tmp_path):
    """Non-finite floats (a log-probability of -inf) survive the round trip; a strict-JSON export that
    wrote them as null would hand a later run None where it expects a number."""
    from judgegap.store.calls import CallCache, export_calls, read_exported_calls

    src = CallCache(tmp_path / "a.sqlite")
    resp = {"result": [[-0.5, float("-inf")], [float("nan"), -1e-9]]}
    src.put_calls([("ab" * 32, "llamacpp", "m", "score_choices", {"prompt": "x"}, resp, 0.1)])
    assert export_calls(src, tmp_path / "c.jsonl", requests=False) == 1
    dst = CallCache(tmp_path / "b.sqlite")
    assert dst.import_calls(read_exported_calls(tmp_path / "c.jsonl")) == 1
    got = dst.get_calls(["ab" * 32])["ab" * 32]["result"]
    assert got[0] == [-0.5, float("-inf")] and got[1][0] != got[1][0] and got[1][1] == -1e-9


def test_a_bad_export_file_is_one_line_and_imports_nothing(tmp_path, monkeypatch):
    cache = tmp_path / "c.sqlite"
    monkeypatch.setenv("JUDGEGAP_CALL_CACHE", str(cache))
    good = {"key": "0" * 64, "backend": "b", "model": "m", "method": "generate", "response": {"result": []}}
    cases = {
        "not json": "{oops\n",
        "no response": json.dumps({k: v for k, v in good.items() if k != "response"}) + "\n",
        "bad key": json.dumps({**good, "key": "../../etc"}) + "\n",
    }
    for name, second_line in cases.items():
        f = tmp_path / f"{name.replace(' ', '_')}.jsonl"
        f.write_text(json.dumps(good) + "\n" + second_line)
        p = cli_inproc("store", "import-calls", str(f))
        lines = p.stderr.strip().splitlines()
        assert p.returncode != 0 and len(lines) == 1 and str(f) in lines[0], (name, p.stderr)
        assert "line 2" in lines[0] or "call 2" in lines[0], (name, lines[0])
        assert not cache.exists() or sqlite3.connect(cache).execute("SELECT COUNT(*) FROM calls").fetchone()[0] == 0
    f = tmp_path / "empty_file.jsonl"
    f.write_text("")
    assert "no calls" in cli_inproc("store", "import-calls", str(f)).stderr
