"""Terminal output: user and model text is printed literally (never as rich markup); Ctrl-C says
how to continue; secrets never reach a message."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.conftest import call_cache_file, cli_inproc


def _squad(path: Path, question: str, answer: str) -> Path:
    doc = {"version": "v2.0", "data": [{"title": "T", "paragraphs": [{"context": f"The answer is {answer} here.",
            "qas": [{"id": "q1", "question": question, "is_impossible": False,
                     "answers": [{"text": answer, "answer_start": 14}]}]}]}]}
    path.write_text(json.dumps(doc))
    return path


def test_markup_in_data_is_printed_literally(tmp_path):
    """Before: a question with '[/b]' crashed `data show`; '[b]x[/b]' lost its brackets."""
    f = _squad(tmp_path / "dev-v2.0.json", "What is [/b] and [b]x[/b] and [red]?", "[link=x]y[/link]")
    p = cli_inproc("data", "show", "squad2", "--data-file", str(f), "--n", "1")
    assert p.returncode == 0, p.stderr
    assert "What is [/b] and [b]x[/b] and [red]?" in p.stdout
    assert "[link=x]y[/link]" in p.stdout


def test_ctrl_c_says_interrupted_and_how_to_resume(tmp_path, data_dir):
    cfg = {"name": "i", "output_dir": str(tmp_path / "out"), "data_dir": str(data_dir),
           "datasets": [{"name": "squad2", "n": 40}], "bootstrap_resamples": 100,
           "models": [{"name": "s", "backend": "scripted", "model": "span", "script": {"latency_s": 0.05}}],
           "experiments": [{"name": "asymmetry", "params": {"text_verdict": False}}]}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    proc = subprocess.Popen([sys.executable, "-m", "judgegap.cli", "run", str(tmp_path / "c.yaml")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    db = tmp_path / "out" / "judgegap.sqlite"
    deadline = time.time() + 60
    while not db.exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "--resume" in err
    import sqlite3
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT status FROM runs").fetchone()[0] == "interrupted"
    assert cli_inproc("run", str(tmp_path / "c.yaml"), "--resume").returncode == 0


def test_a_key_echoed_by_a_server_never_reaches_the_error_line(httpserver, tmp_path, data_dir, monkeypatch):
    from werkzeug import Response

    key = "sk-test-SECRET-0123456789abcdef"
    monkeypatch.setenv("MY_API_KEY", key)
    httpserver.expect_request("/v1/completions").respond_with_handler(
        lambda req: Response(f"bad request: key {req.headers.get('Authorization')} rejected", status=400))
    cfg = {"name": "k", "output_dir": str(tmp_path / "out"), "data_dir": str(data_dir),
           "datasets": [{"name": "squad2", "n": 2}],
           "models": [{"name": "srv", "backend": "openai", "model": "m", "base_url": httpserver.url_for("/v1"),
                       "api_key_env": "MY_API_KEY"}],
           "experiments": [{"name": "asymmetry", "params": {"text_verdict": False}}]}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    p = cli_inproc("run", str(tmp_path / "c.yaml"))
    assert p.returncode == 1 and "HTTP 400" in p.stderr
    assert key not in p.stderr and key not in p.stdout and "***" in p.stderr
    # the run stored no record, so it leaves no run behind; neither that nor the call cache holds the key
    assert not (tmp_path / "out").exists()
    cache = call_cache_file()
    assert not cache.exists() or key.encode() not in cache.read_bytes()
