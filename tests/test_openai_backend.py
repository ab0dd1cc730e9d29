"""The openai backend against real local HTTP servers: faults, retries, bad keys, no logprobs."""

from __future__ import annotations

import hashlib
import math
import json
import socket
import threading
import time

import pytest
import yaml
from werkzeug import Request, Response

from judgegap.backends.base import ChatPrompt, GenRequest
from judgegap.backends.openai_compat import OpenAIBackend
from judgegap.errors import BackendError
from tests.conftest import call_cache_file, run_cli, run_then_kill_9


def _ok(body: dict, with_logprobs: bool = True) -> Response:
    prompt = body.get("prompt", "")
    h = int(hashlib.sha256(prompt.encode()).hexdigest(), 16)
    if body.get("max_tokens") == 1:
        text = " Yes" if h % 2 else " No"
    else:
        text = f" answer {h % 97}"
    lp = {"tokens": [text], "token_logprobs": [-0.5],
          "top_logprobs": [{" Yes": -0.4 - (h % 7) / 10, " No": -1.1, " The": -3.0}]}
    choice = {"text": text, "finish_reason": "stop", "index": 0}
    if with_logprobs:
        choice["logprobs"] = lp
    return Response(json.dumps({"choices": [choice], "usage": {"prompt_tokens": len(prompt.split())}}),
                    content_type="application/json")


class FaultyServer:
    """Every prompt first gets a fault (429, 500, garbage JSON or a slow reply), then a good answer."""

    def __init__(self) -> None:
        self.seen: dict[str, int] = {}
        self.lock = threading.Lock()
        self.faults = 0

    def __call__(self, request: Request) -> Response:
        body = json.loads(request.data)
        key = json.dumps(body, sort_keys=True)
        with self.lock:
            k = self.seen.get(key, 0)
            self.seen[key] = k + 1
        kind = int(hashlib.sha256(key.encode()).hexdigest(), 16) % 5
        if k == 0 and kind != 4:
            self.faults += 1
            if kind == 0:
                return Response("slow down", status=429, headers={"Retry-After": "0"})
            if kind == 1:
                return Response("boom", status=500)
            if kind == 2:
                return Response("{not json", status=200, content_type="application/json")
            time.sleep(1.2)  # longer than the client's timeout
        return _ok(body)


def _prompts(n=6):
    return [ChatPrompt.of("sys", f"question {i}", "Verdict:") for i in range(n)]


def test_retries_recover_from_every_fault(httpserver):
    server = FaultyServer()
    httpserver.expect_request("/v1/completions").respond_with_handler(server)
    be = OpenAIBackend("m", base_url=httpserver.url_for("/v1"), timeout_s=0.5, backoff_base_s=0.01,
                       concurrency=4, echo=False)
    outs = be.generate([GenRequest(p, max_new_tokens=4) for p in _prompts()])
    assert all(o.text.startswith(" answer") for o in outs)
    scores = be.score_choices(_prompts(), [" Yes", " No", " Maybe"])
    assert all(s[1] == -1.1 and s[2] == float("-inf") for s in scores)
    # a slow reply can also time out requests queued behind it, so retries >= injected faults
    assert be.retries >= server.faults > 0 and sum(be.failures.values()) == be.retries
    assert set(be.failures) <= {"http_429", "http_500", "malformed_reply", "timeout"}


def test_run_against_fault_server_accounts_for_every_item(httpserver, tmp_path, data_dir):
    server = FaultyServer()
    httpserver.expect_request("/v1/completions").respond_with_handler(server)
    cfg = {"name": "faulty", "output_dir": str(tmp_path / "out"), "data_dir": str(data_dir),
           "datasets": [{"name": "squad2", "n": 10}],
           "models": [{"name": "srv", "backend": "openai", "model": "m", "base_url": httpserver.url_for("/v1"),
                       "timeout_s": 0.5, "concurrency": 4}],
           "experiments": [{"name": "asymmetry", "params": {"text_verdict": False}}]}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    p = run_cli("run", str(tmp_path / "c.yaml"))
    assert p.returncode == 0, p.stderr
    recs = [json.loads(x) for x in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    gen_ids = [r["item_id"] for r in recs if r["kind"] == "generation"]
    assert len(gen_ids) == len(set(gen_ids)) == 10
    self_j = [r["item_id"] for r in recs if r["kind"] == "judgment" and r["author"] == "srv"]
    assert sorted(self_j) == sorted(gen_ids)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    stats = summary["run"]["backends"]["srv"]
    assert stats["retries"] > 0 and sum(stats["retry_reasons"].values()) == stats["retries"]


def test_wrong_api_key_is_one_line(httpserver, tmp_path, data_dir, monkeypatch):
    httpserver.expect_request("/v1/completions").respond_with_data("unauthorized", status=401)
    cfg = {"name": "k", "output_dir": str(tmp_path / "out"), "data_dir": str(data_dir),
           "datasets": [{"name": "squad2", "n": 2}],
           "models": [{"name": "srv", "backend": "openai", "model": "m", "base_url": httpserver.url_for("/v1"),
                       "api_key_env": "JG_TEST_KEY"}],
           "experiments": ["asymmetry"]}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    p = run_cli("run", str(tmp_path / "c.yaml"), env={"JG_TEST_KEY": "sk-secret-value-123"})
    assert p.returncode == 1 and "authentication failed (HTTP 401)" in p.stderr
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in p.stderr
    assert "sk-secret-value-123" not in p.stderr + p.stdout
    for f in (tmp_path / "out").glob("*"):
        assert b"sk-secret-value-123" not in f.read_bytes()


def test_server_down_and_no_logprobs(httpserver):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    be = OpenAIBackend("m", base_url=f"http://127.0.0.1:{port}/v1", max_retries=1, backoff_base_s=0.01)
    with pytest.raises(BackendError, match="cannot reach"):
        be.generate([GenRequest(_prompts(1)[0])])
    httpserver.expect_request("/v1/completions").respond_with_handler(
        lambda req: _ok(json.loads(req.data), with_logprobs=False))
    be = OpenAIBackend("m", base_url=httpserver.url_for("/v1"))
    with pytest.raises(BackendError, match="no log-probabilities"):
        be.score_choices(_prompts(1), [" Yes", " No"])


def test_logprobs_false_is_rejected_at_config_time(tmp_path, data_dir):
    cfg = {"name": "k", "output_dir": str(tmp_path / "out"), "data_dir": str(data_dir),
           "datasets": [{"name": "squad2", "n": 2}],
           "models": [{"name": "srv", "backend": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1",
                       "logprobs": False}],
           "experiments": ["asymmetry"]}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    p = run_cli("run", str(tmp_path / "c.yaml"))
    assert p.returncode == 2 and "needs log-probabilities" in p.stderr and "model srv (backend openai)" in p.stderr


def test_kill_9_then_resume_with_the_openai_backend(httpserver, tmp_path, data_dir):
    import sqlite3

    seen: list[str] = []

    def slow(req):
        body = json.loads(req.data)
        seen.append(json.dumps(body, sort_keys=True))
        time.sleep(0.03)
        return _ok(body)

    httpserver.expect_request("/v1/completions").respond_with_handler(slow)
    cfg = {"name": "resume", "output_dir": str(tmp_path / "out"), "data_dir": str(data_dir),
           "datasets": [{"name": "squad2", "n": 30}],
           "models": [{"name": "srv", "backend": "openai", "model": "m", "base_url": httpserver.url_for("/v1"),
                       "concurrency": 1}],
           "experiments": ["asymmetry"]}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    db = call_cache_file()
    run_then_kill_9(["run", str(tmp_path / "c.yaml")], min_calls=20, timeout=120)
    time.sleep(0.3)  # let the server finish the handler of a request cut off by the kill
    with sqlite3.connect(db) as c:
        done = {json.dumps(json.loads(r[0])) for r in c.execute("SELECT request_json FROM calls")}
    n_before = len(seen)
    p = run_cli("run", str(tmp_path / "c.yaml"), "--resume")
    assert p.returncode == 0, p.stderr
    with sqlite3.connect(db) as c:
        total = c.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
    # the resumed run sent exactly the calls that were not stored before the kill
    assert len(seen) - n_before == total - len(done)


# -- defect: a self-score of 1 read as 10 through a server (score_choices from top_logprobs) --------------

_FIRST = {" 1": math.log(0.90), " 2": math.log(0.05), " 8": math.log(0.05)}


def _score_server(echo: bool, ten_one_token: bool = False, seen: list | None = None):
    """Top tokens " 1" 0.90, " 2" 0.05, " 8" 0.05; after " 1" the token "0" has probability 0.01.

    With ``echo`` the server returns prompt tokens with log-probs and text offsets as vLLM and
    llama-cpp-python do: the prompt (one token here), then " 1" + "0" for " 10"."""
    def handler(req: Request) -> Response:
        body = json.loads(req.data)
        prompt = body["prompt"]
        if seen is not None:
            seen.append(body)
        if echo and body.get("echo"):
            cut = prompt.index("Score:") + len("Score:")
            head, choice = prompt[:cut], prompt[cut:]
            toks, lps, offs = [head], [None], [0]
            pieces = [choice] if choice in _FIRST or ten_one_token else ([" 1", "0"] if choice == " 10" else [choice])
            for k, piece in enumerate(pieces):
                toks.append(piece)
                offs.append(len(head) + sum(len(x) for x in pieces[:k]))
                lps.append(_FIRST.get(piece, math.log(0.009 if piece == " 10" else 1e-6)) if k == 0
                           else math.log(0.01))
            lp = {"tokens": toks + ["\n"], "token_logprobs": lps + [-0.1], "text_offset": offs + [len(prompt)],
                  "top_logprobs": None}
            return Response(json.dumps({"choices": [{"text": prompt + "\n", "logprobs": lp}]}),
                            content_type="application/json")
        top = {**_FIRST, " The": math.log(0.0001), **({" 10": math.log(0.009)} if ten_one_token else {})}
        lp = {"tokens": [" 1"], "token_logprobs": [_FIRST[" 1"]], "top_logprobs": [top]}
        return Response(json.dumps({"choices": [{"text": " 1", "logprobs": lp}]}), content_type="application/json")
    return handler


def _score_prompts():
    return [ChatPrompt.of("Rate the answer 1-10.", f"answer {i}", "Score:") for i in range(3)]


def test_self_score_of_one_is_not_read_as_ten_without_echo(httpserver):
    """Before the fix: expected score 9.5 (" 10" got " 1"'s log-prob, then took its mass)."""
    from judgegap.metrics.scores import SCORE_CHOICES

    httpserver.expect_request("/v1/completions").respond_with_handler(_score_server(echo=False))
    be = OpenAIBackend("m", base_url=httpserver.url_for("/v1"), backoff_base_s=0.01)
    with pytest.raises(BackendError, match="' 10' is not one token.*prefix ' 1'"):
        be.score_choices(_score_prompts(), list(SCORE_CHOICES))
    assert be.echo is False
    # single-token choices stay exact without echo
    assert be.score_choices(_score_prompts()[:1], [" 1", " 2"]) == [[_FIRST[" 1"], _FIRST[" 2"]]]


def test_self_score_exact_through_echo(httpserver):
    from judgegap.metrics.scores import SCORE_CHOICES, expected_score, score_distribution

    httpserver.expect_request("/v1/completions").respond_with_handler(_score_server(echo=True))
    be = OpenAIBackend("m", base_url=httpserver.url_for("/v1"), backoff_base_s=0.01)
    lps = be.score_choices(_score_prompts(), list(SCORE_CHOICES))
    assert be.echo is True
    row = lps[0]
    assert row[0] == pytest.approx(math.log(0.90)) and row[9] == pytest.approx(math.log(0.90 * 0.01))
    dist, _ = score_distribution(row)
    # P(1) = 0.9 - 0.009, P(10) = 0.009, P(2) = P(8) = 0.05 (+ 1e-6 on the rest)
    assert expected_score(dist) == pytest.approx((0.891 + 0.1 + 0.4 + 0.09 + 1e-6 * (3 + 4 + 5 + 6 + 7 + 9))
                                                 / (1 + 6e-6), abs=1e-4)
    assert expected_score(dist) < 1.6


@pytest.mark.parametrize("echo", [True, False])
def test_a_server_whose_tokenizer_has_10_as_one_token_does_not_lose_p1(httpserver, echo):
    """Llama-3-style tokenizers have " 10" as ONE token: P(" 1") then holds no part of P(" 10"), and
    subtracting it (the string-prefix rule) under-read P(score 1) -- 0.891 instead of 0.9 here. The
    backend must answer choice_extensions from the server's own tokens (echo) or from the top list
    (every choice read is one verbatim token); a digit-splitting server still gets " 10" extending
    " 1". The echo tokens are recorded with the scoring call: no extra request."""
    from judgegap.metrics.scores import SCORE_CHOICES, score_distribution

    seen: list = []
    httpserver.expect_request("/v1/completions").respond_with_handler(
        _score_server(echo=echo, ten_one_token=True, seen=seen))
    be = OpenAIBackend("m", base_url=httpserver.url_for("/v1"), backoff_base_s=0.01, echo=None if echo else False)
    prompts = _score_prompts()
    lps = be.score_choices(prompts, list(SCORE_CHOICES))
    n = len(seen)
    ext = be.choice_extensions(prompts[0], list(SCORE_CHOICES))
    assert len(seen) == n and ext == [[] for _ in SCORE_CHOICES]
    dist, _ = score_distribution(lps[0], extensions=ext)
    assert dist[0] / dist[9] == pytest.approx(0.90 / 0.009, rel=1e-6)


def test_a_digit_splitting_server_keeps_10_extending_1_through_echo(httpserver):
    from judgegap.metrics.scores import SCORE_CHOICES

    httpserver.expect_request("/v1/completions").respond_with_handler(_score_server(echo=True))
    be = OpenAIBackend("m", base_url=httpserver.url_for("/v1"), backoff_base_s=0.01)
    prompt = _score_prompts()[0]
    ext = be.choice_extensions(prompt, list(SCORE_CHOICES))  # before any scoring: asks the server once
    assert ext[0] == [9] and all(e == [] for e in ext[1:])


# -- servers cannot hang a run -----------------------------------------------------------------------------

def test_a_trickling_reply_hits_the_total_deadline(httpserver):
    """Before: one byte every 0.3 s never tripped the per-read timeout of 1 s."""
    def trickle(req):
        def body():
            for ch in '{"choices": [{"text": " slow", "finish_reason": "stop"}]}':
                time.sleep(0.3)
                yield ch.encode()
        return Response(body(), content_type="application/json")

    httpserver.expect_request("/v1/completions").respond_with_handler(trickle)
    be = OpenAIBackend("m", base_url=httpserver.url_for("/v1"), timeout_s=1.0, max_retries=0, logprobs=False)
    t0 = time.monotonic()
    with pytest.raises(BackendError, match="no complete reply within timeout_s=1s"):
        be.generate([GenRequest(ChatPrompt.of(None, "q"), max_new_tokens=2)])
    assert time.monotonic() - t0 < 5


def test_retry_after_is_capped_by_the_maximum_backoff(httpserver):
    """Before: Retry-After: 3600 was obeyed as sent."""
    seen = []

    def handler(req):
        seen.append(1)
        if len(seen) == 1:
            return Response("busy", status=429, headers={"Retry-After": "3600"})
        return _ok(json.loads(req.data))

    httpserver.expect_request("/v1/completions").respond_with_handler(handler)
    be = OpenAIBackend("m", base_url=httpserver.url_for("/v1"), backoff_max_s=0.2, echo=False)
    t0 = time.monotonic()
    out = be.generate([GenRequest(ChatPrompt.of(None, "q"), max_new_tokens=2)])
    assert out[0].text.startswith(" answer") and time.monotonic() - t0 < 5
    assert be.stats()["retry_after_capped"] == 1


@pytest.mark.parametrize("body", [
    {"choices": "nope"},
    {"choices": []},
    {"choices": [{"text": 5}]},
    {"choices": [{"text": " Yes", "logprobs": {"tokens": [" Yes"], "token_logprobs": ["-0.5"],
                                               "top_logprobs": [{" Yes": "-0.4"}]}}]},
    {"choices": [{"text": " Yes", "logprobs": {"tokens": [" Yes"], "token_logprobs": [None],
                                               "top_logprobs": [{" Yes": None}]}}]},
])
def test_malformed_200_replies_are_retried_then_one_error(httpserver, body):
    """Before: a 200 with {"choices": "nope"} or string/null log-probs gave a traceback."""
    httpserver.expect_request("/v1/completions").respond_with_json(body)
    be = OpenAIBackend("m", base_url=httpserver.url_for("/v1"), max_retries=1, backoff_base_s=0.01, echo=False)
    with pytest.raises(BackendError, match="malformed .*after 2 attempts"):
        be.generate([GenRequest(ChatPrompt.of(None, "q"), max_new_tokens=2)])
    assert be.failures.get("malformed_reply") == 2
