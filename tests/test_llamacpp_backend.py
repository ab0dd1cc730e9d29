"""The in-process llama.cpp backend on the real SmolLM2 GGUF: exact choices, prefix reuse,
agreement with transformers on the same file, resume, and bad input."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("xllamacpp")

from judgegap.backends.base import ChatPrompt, GenRequest  # noqa: E402
from judgegap.errors import BackendError  # noqa: E402
from judgegap.metrics.scores import SCORE_CHOICES, expected_score, score_distribution  # noqa: E402
from judgegap.prompts import PROMPTS  # noqa: E402
from tests.conftest import call_cache_file, cli_inproc, run_then_kill_9  # noqa: E402

MODEL = "smollm2-135m-instruct"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lcpp():
    from judgegap.backends.llamacpp import LlamaCppBackend

    try:
        be = LlamaCppBackend(MODEL, n_ctx=2048)
    except BackendError as exc:
        pytest.skip(f"SmolLM2 not available: {exc}")
    yield be
    be.close()


@pytest.fixture(scope="module")
def items():
    from judgegap.data import load_dataset
    from tests.conftest import real_data_dir

    return load_dataset("squad2", data_dir=real_data_dir(), n=6, seed=3, answerable=True)


def _judge_prompts(items, answers):
    j = PROMPTS.get("qa_judge")
    return [j.render(context=it.context, question=it.question, candidate=a or "unanswerable",
                     allow_unanswerable=False) for it, a in zip(items, answers)]


def test_multi_token_choice_is_exact(lcpp, items):
    """log P(" 10") = log P(" 1" | prompt) + log P("0" | prompt + " 1"), each read from the full
    softmax at its position -- never the prefix " 1" alone (the defect of top-k servers)."""
    s = PROMPTS.get("self_score").render(context=items[0].context, question=items[0].question,
                                         candidate=items[0].answers[0], allow_unanswerable=False)
    text = lcpp.render(s)
    ids = lcpp.encode_text(text)
    ten = lcpp._continuation(text, ids, " 10")
    one = lcpp._continuation(text, ids, " 1")
    assert ten[:len(one)] == one and len(ten) == len(one) + 1  # the tokenisation the subtraction relies on
    expect_one = sum(lcpp._top(ids + one[:k], lcpp.n_vocab)[one[k]] for k in range(len(one)))
    expect_ten = sum(lcpp._top(ids + ten[:k], lcpp.n_vocab)[ten[k]] for k in range(len(ten)))
    got = lcpp.score_choices([s], [" 1", " 10"])[0]
    # equal up to llama.cpp's batch non-invariance (the chain above evaluated its prefixes in another
    # order); a prefix read as the whole choice would be off by log P("0" | ... " 1") instead
    gap = expect_one - expect_ten
    assert gap > 1.0
    assert got[0] == pytest.approx(expect_one, abs=0.1)
    assert got[1] == pytest.approx(expect_ten, abs=0.1)
    assert got[1] < got[0]  # the whole " 10" is less likely than its prefix " 1"


def test_prefix_reuse_gives_the_same_verdicts(lcpp, items):
    """llama.cpp is deterministic for a given call order but not batch-invariant: a suffix evaluated
    after a reused prefix goes through other matmul kernels than the whole prompt at once. Measured
    on SmolLM2 Q4_1: up to 0.10 nats (the size of the quantised-vs-fp32 gap to transformers), never
    a flipped verdict; the hf backend's prefix sharing is exact (test_hf_backend)."""
    prompts = _judge_prompts(items[:2], [it.answers[0] for it in items[:2]])
    # back to back: the judge prompts of one item share the passage; then each after an unrelated prompt
    warm = lcpp.score_choices(prompts, [" Yes", " No"])
    cold = []
    for p in prompts:
        lcpp.score_choices([ChatPrompt.of(None, "unrelated text to evict the cache " * 20)], [" a"])
        cold.append(lcpp.score_choices([p], [" Yes", " No"])[0])
    warm, cold = np.array(warm), np.array(cold)
    assert np.max(np.abs(warm - cold)) < 0.2
    assert np.array_equal(np.argmax(warm, axis=1), np.argmax(cold, axis=1))
    again = [lcpp.score_choices([ChatPrompt.of(None, "unrelated text to evict the cache " * 20)], [" a"]) and
             lcpp.score_choices([p], [" Yes", " No"])[0] for p in prompts]
    assert np.array_equal(np.array(again), cold)  # same call order, same numbers
    st = lcpp.stats()
    assert st["prompt_tokens_evaluated"] < st["prompt_tokens_submitted"]


def test_agreement_with_hf_on_the_same_gguf(lcpp, items):
    """Pinned from measurements (see benchmarks/RESULTS.md): llama.cpp computes with the quantised
    Q4_1 blocks, transformers with the de-quantised fp32 weights."""
    from judgegap.backends.hf import HFBackend

    hf = HFBackend(MODEL)
    g = PROMPTS.get("qa_generate")
    reqs = [GenRequest(g.render(context=it.context, question=it.question, allow_unanswerable=False),
                       max_new_tokens=8) for it in items]
    a_l = [c.text.strip() for c in lcpp.generate(reqs)]
    a_h = [c.text.strip() for c in hf.generate(reqs)]
    same = sum(x == y for x, y in zip(a_l, a_h))
    jp = _judge_prompts(items, a_h)
    lj, hj = np.array(lcpp.score_choices(jp, [" Yes", " No"])), np.array(hf.score_choices(jp, [" Yes", " No"]))
    sp = [PROMPTS.get("self_score").render(context=it.context, question=it.question, candidate=a,
                                           allow_unanswerable=False) for it, a in zip(items[:3], a_h)]
    ls, hs = lcpp.score_choices(sp, list(SCORE_CHOICES)), hf.score_choices(sp, list(SCORE_CHOICES))
    e_l = np.array([expected_score(score_distribution(r)[0]) for r in ls])
    e_h = np.array([expected_score(score_distribution(r)[0]) for r in hs])
    margin_l, margin_h = lj[:, 0] - lj[:, 1], hj[:, 0] - hj[:, 1]
    print(json.dumps({"same_answers": same, "max_abs_dlogp_verdict": float(np.max(np.abs(lj - hj))),
                      "verdict_sign_agree": int(np.sum(np.sign(margin_l) == np.sign(margin_h))),
                      "margin_corr": float(np.corrcoef(margin_l, margin_h)[0, 1]),
                      "max_abs_d_expected_score": float(np.max(np.abs(e_l - e_h)))}))
    assert same >= 3                                   # measured 8/10 greedy answers identical (12 tokens)
    assert np.max(np.abs(lj - hj)) < 0.3               # measured max |d log p| 0.10
    assert np.sum(np.sign(margin_l) == np.sign(margin_h)) >= 5  # measured 9/10 verdicts agree
    assert np.corrcoef(margin_l, margin_h)[0, 1] > 0.85  # measured 0.98 (10 items)
    assert np.max(np.abs(e_l - e_h)) < 0.8             # expected self-score (1-10), measured max 0.39


def test_bad_inputs_are_one_line(tmp_path, data_dir):
    import gguf

    bad_arch = tmp_path / "weird.gguf"
    w = gguf.GGUFWriter(str(bad_arch), "notanarch")
    w.add_context_length(128)
    w.add_tensor("t", np.zeros((4, 4), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    from judgegap.backends.models import resolve_builtin

    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(resolve_builtin(MODEL).read_bytes()[: 3 << 20])
    cases = [({"model": str(bad_arch)}, "architecture 'notanarch' is not supported"),
             ({"model": str(truncated)}, "truncated.gguf"),
             ({"model": MODEL, "n_ctx": 100000}, "exceeds the model's trained context of 8192"),
             ({"model": MODEL, "n_ctx": 256}, "exceeds the context of 256 tokens")]
    for extra, expect in cases:
        cfg = {"name": "bad", "output_dir": str(tmp_path / "out"), "data_dir": str(data_dir),
               "datasets": [{"name": "squad2", "n": 2}],
               "models": [{"name": "m", "backend": "llamacpp", **extra}],
               "experiments": [{"name": "asymmetry", "params": {"text_verdict": False}}]}
        (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
        p = cli_inproc("run", str(tmp_path / "c.yaml"), "--overwrite")
        lines = p.stderr.strip().splitlines()
        assert p.returncode != 0 and lines and lines[-1].startswith("error: ") and expect in lines[-1], p.stderr


def _write_llamacpp_run(tmp_path, data_dir, n: int) -> None:
    """tmp_path/c.yaml: asymmetry on n SQuAD items through llama.cpp (the kill / Ctrl-C tests' run)."""
    cfg = {"name": "lc", "output_dir": str(tmp_path / "out"), "data_dir": str(data_dir), "bootstrap_resamples": 100,
           "datasets": [{"name": "squad2", "n": n}],
           "models": [{"name": "m", "backend": "llamacpp", "model": MODEL, "n_ctx": 2048,
                       "generation": {"max_new_tokens": 4}}],
           "experiments": [{"name": "asymmetry", "params": {"text_verdict": False}}]}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))


def test_kill_9_then_resume_through_llamacpp(tmp_path, data_dir):
    _write_llamacpp_run(tmp_path, data_dir, n=4)
    db = call_cache_file()
    run_then_kill_9(["run", str(tmp_path / "c.yaml")], min_calls=1, timeout=180)
    with sqlite3.connect(db) as c:
        before = dict(c.execute("SELECT key, created_at FROM calls").fetchall())
    assert before
    p = cli_inproc("run", str(tmp_path / "c.yaml"), "--resume")
    assert p.returncode == 0, p.stderr
    with sqlite3.connect(db) as c:
        after = dict(c.execute("SELECT key, created_at FROM calls").fetchall())
    assert all(after[k] == v for k, v in before.items())  # nothing completed was redone
    s = json.loads((Path(tmp_path) / "out" / "summary.json").read_text())
    assert s["experiments"]["asymmetry"]["datasets"]["squad2"]["models"]["m"]["n_items"] == 4
    assert s["run"]["backends"]["m"]["engine"].startswith("llama.cpp")


PREBUILT = "CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 | "
NATIVE = ("CPU : SSE3 = 1 | SSSE3 = 1 | AVX = 1 | AVX_VNNI = 1 | AVX2 = 1 | F16C = 1 | FMA = 1 | BMI2 = 1 | AVX512 = 1 |"
          " AVX512_VBMI = 1 | AVX512_VNNI = 1 | AVX512_BF16 = 1 | LLAMAFILE = 1 | OPENMP = 1 | REPACK = 1 | ")


def test_kernels_this_cpu_could_run_but_the_build_lacks():
    """The two builds measured on 2026-12-05 (xllamacpp's prebuilt wheel, and one built for an AVX-512 CPU)."""
    from judgegap.backends.llamacpp import cpu_kernels

    avx512_cpu = {"avx2", "fma", "avx_vnni", "avx512f", "avx512vbmi", "avx512_vnni", "avx512_bf16", "amx_int8"}
    built, unused = cpu_kernels(PREBUILT, avx512_cpu)
    assert "AVX2" in built and "AVX512" not in built
    assert unused == ["AVX_VNNI", "AVX512", "AVX512_VBMI", "AVX512_VNNI", "AVX512_BF16"]  # never AMX
    assert cpu_kernels(NATIVE, avx512_cpu)[1] == []
    assert cpu_kernels(PREBUILT, {"avx2", "fma"})[1] == []  # an AVX2-only CPU: nothing left unused


def test_the_run_records_the_kernels_the_build_used(lcpp):
    import xllamacpp

    st = lcpp.stats()
    assert st["cpu_kernels"] and all(f"{k} = 1" in xllamacpp.get_system_info() for k in st["cpu_kernels"])
    assert (lcpp.load_note is not None) == bool(st["cpu_kernels_unused"])


def test_resume_on_more_threads_is_the_same_run_and_repeats_no_call(tmp_path, data_dir):
    """Before: a run stopped with n_threads 1 (beside another job) could not be resumed with n_threads 2
    on a quiet machine ('the config changed ... models[0].n_threads: 1 -> 2'), although threads are not
    in llama.cpp's call fingerprint and every call would have come from the cache."""
    from tests.conftest import count_calls

    _write_llamacpp_run(tmp_path, data_dir, n=2)
    cfg = yaml.safe_load((tmp_path / "c.yaml").read_text())
    cfg["models"][0]["n_threads"] = 1
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    assert cli_inproc("run", str(tmp_path / "c.yaml")).returncode == 0
    db = call_cache_file()
    calls = count_calls(db)
    cfg["models"][0]["n_threads"] = 2
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    p = cli_inproc("run", str(tmp_path / "c.yaml"), "--resume")
    assert p.returncode == 0, p.stderr
    assert count_calls(db) == calls
    cfg["models"][0]["generation"]["max_new_tokens"] = 5  # what the model computes still counts as a change
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    p = cli_inproc("run", str(tmp_path / "c.yaml"), "--resume")
    assert p.returncode != 0 and "models[0].generation.max_new_tokens: 4 -> 5" in p.stderr


def test_openai_backend_against_the_real_llama_cpp_server(lcpp, items):
    """The same llama.cpp engine over HTTP (xllamacpp's server listens on loopback): Yes/No verdicts
    from its top log-probs agree with the in-process exact scores; the 1-10 self-score scale cannot
    be read exactly there (no echoed prompt log-probs; " 10" is " " + "1" + "0"), so it raises
    instead of reading " 1" as " 10"."""
    from judgegap.backends.openai_compat import OpenAIBackend

    srv = OpenAIBackend("smollm2", base_url=lcpp.server.listening_address + "/v1", tokenizer=MODEL, timeout_s=120)
    prompts = _judge_prompts(items[:2], [it.answers[0] for it in items[:2]])
    over_http = np.array(srv.score_choices(prompts, [" Yes", " No"]))
    assert srv.echo is False  # llama.cpp's server ignores echo
    in_proc = np.array(lcpp.score_choices(prompts, [" Yes", " No"]))
    assert np.max(np.abs(over_http - in_proc)) < 0.2
    assert np.array_equal(np.argmax(over_http, axis=1), np.argmax(in_proc, axis=1))
    s = PROMPTS.get("self_score").render(context=items[0].context, question=items[0].question,
                                         candidate=items[0].answers[0], allow_unanswerable=False)
    with pytest.raises(BackendError, match="cannot be read exactly"):
        srv.score_choices([s], list(SCORE_CHOICES))


def test_ctrl_c_inside_a_llama_cpp_call_marks_the_run_interrupted(tmp_path, data_dir):
    """SIGINT mostly lands inside llama.cpp's native call, whose server turns the exception into an
    error reply; the run must still end as *interrupted* (exit 130, the resume hint), not *failed*."""
    import signal
    import time

    from tests.conftest import count_calls

    _write_llamacpp_run(tmp_path, data_dir, n=6)
    db = call_cache_file()
    proc = subprocess.Popen([sys.executable, "-m", "judgegap.cli", "run", str(tmp_path / "c.yaml")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 180
    while count_calls(db) < 1 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1].startswith("error: interrupted: completed model calls are stored"), err
    from judgegap.store import Store

    st = Store.in_dir(tmp_path / "out")
    status = st.last_run()["status"]
    st.close()
    assert status == "interrupted"


def test_an_error_reply_after_a_signal_is_an_interrupt(lcpp, monkeypatch):
    """Where the signal lands inside llama.cpp's call, xllamacpp catches the raised Interrupted and
    returns it as an error reply -- this one, seen when a real run was stopped mid-call:
    {'code': 500, 'type': 'server_error', 'message': 'interrupted: ...'}. After a signal such a
    reply must raise Interrupted (the run is then marked interrupted); without one it stays a
    BackendError. The reply is replayed on the real backend (a real signal lands there by chance)."""
    from judgegap.errors import INTERRUPT_MESSAGE, Interrupted, _INTERRUPT, mark_interrupted

    reply = {"code": 500, "type": "server_error", "message": INTERRUPT_MESSAGE}
    class Replay:  # the native Server's method is read-only: stand in for one call's reply
        def handle_completions(self, body):
            return {"error": reply}

    monkeypatch.setattr(lcpp, "server", Replay())
    monkeypatch.setitem(_INTERRUPT, "seen", False)
    req = [GenRequest(ChatPrompt.of(None, "Say hi", ""), max_new_tokens=2)]
    with pytest.raises(BackendError):
        lcpp.generate(req)
    mark_interrupted()
    with pytest.raises(Interrupted):
        lcpp.generate(req)


def test_gemma3_reuses_the_passage_across_an_items_prompts(items):
    """Gemma 3 interleaves sliding-window layers: with llama.cpp's default SWA cache the server cannot
    roll the KV state back to a shared prefix, and every judge prompt of an item re-evaluated the whole
    passage (0% reuse, ~3 s a call here). swa_full (on by default for sliding-window models) keeps the
    full cache: the second and later prompts evaluate little more than their own suffix. Verdicts
    stay within llama.cpp's usual reuse noise of the cold reading; swa_full: false is still honoured."""
    from judgegap.backends.llamacpp import LlamaCppBackend

    try:
        be = LlamaCppBackend("gemma3-270m", chat_template="never", n_ctx=2048)
    except BackendError as exc:
        pytest.skip(f"Gemma-3 not available: {exc}")
    try:
        assert be.sliding_window == 512 and be.swa_full and be.fingerprint()["swa_full"] is True
        it = items[0]
        prompts = _judge_prompts([it] * 4, ["Paris", "1999", "the king", it.answers[0]])
        first = be.score_choices(prompts[:1], [" Yes", " No"])
        sub0, ev0 = be.stats()["prompt_tokens_submitted"], be.stats()["prompt_tokens_evaluated"]
        warm = be.score_choices(prompts[1:], [" Yes", " No"])
        st = be.stats()
        sub, ev = st["prompt_tokens_submitted"] - sub0, st["prompt_tokens_evaluated"] - ev0
        assert ev < 0.25 * sub, st
    finally:
        be.close()
    off = LlamaCppBackend("gemma3-270m", chat_template="never", n_ctx=2048, swa_full=False)
    try:
        assert "swa_full" not in off.fingerprint()
        cold = [off.score_choices([p], [" Yes", " No"])[0] for p in prompts]
        st = off.stats()
        assert st["prompt_tokens_evaluated"] > 0.9 * st["prompt_tokens_submitted"]  # the old behaviour
    finally:
        off.close()
    got = np.array(first + warm)
    assert np.max(np.abs(got - np.array(cold))) < 0.2
    assert np.array_equal(np.argmax(got, axis=1), np.argmax(np.array(cold), axis=1))


def test_a_token_outside_the_top_20_is_read_from_a_wider_ask_not_the_full_vocabulary(lcpp, items):
    """A choice token ranked between 20 and 1024 at its position is read from a 1024-token ask (exact:
    llama.cpp's probabilities come from the full softmax), not from a full-vocabulary ask, which for
    Gemma 3's 262k vocabulary costs seconds a call; a rarer token still gets the full ask."""
    from judgegap.backends.llamacpp import WIDE_N

    ids = lcpp.encode(_judge_prompts(items[:1], [items[0].answers[0]])[0])
    lcpp._top(ids, 1)  # the same prompt again below: each ask then re-evaluates the same tail (llama.cpp
    full = lcpp._top(ids, lcpp.n_vocab)  # is not batch-invariant: a cold read differs by ~0.1 nats)
    ranked = sorted(full, key=lambda t: -full[t])
    mid, rare = ranked[300], ranked[WIDE_N + 500]
    wide0, full0 = lcpp.wide_asks, lcpp.full_vocab_asks
    got = lcpp._logprob_at(ids, mid, {})
    assert (lcpp.wide_asks - wide0, lcpp.full_vocab_asks - full0) == (1, 0)
    assert got == pytest.approx(full[mid], abs=1e-4)
    got_rare = lcpp._logprob_at(ids, rare, {})
    assert lcpp.full_vocab_asks - full0 == 1 and got_rare == pytest.approx(full[rare], abs=1e-4)


def test_a_choice_through_a_partial_utf8_token_is_read_not_refused(lcpp):
    """llama.cpp's server holds back a sampled token whose text is an incomplete UTF-8 sequence, and
    with one token to generate it then returns no probabilities at all. SmolLM2 spells the "ě" of
    "Poděbrady" as two byte tokens, so scoring the candidate "George of Poděbrady" reaches a position
    whose greedy token is such a byte (the failure of critique's self-agreement pass on HotpotQA).
    The reading must be the same log-probability transformers gives on the same GGUF."""
    from judgegap.backends.hf import HFBackend

    prompt = ChatPrompt.of(None, "Passage: George of Poděbrady was King of Bohemia. Poděbrady is a town.\n\n"
                           "Question: Who was King of Bohemia?", "Answer:")
    choices = [" George of Poděbrady", " George of Pod"]  # their difference: the byte tokens and "brady"
    retries0 = lcpp.stats()["partial_utf8_retries"]
    got = np.array(lcpp.score_choices([prompt], choices)[0])
    assert lcpp.stats()["partial_utf8_retries"] > retries0  # the held-back position was really reached
    want = np.array(HFBackend(MODEL).score_choices([prompt], choices)[0])
    assert np.all(np.isfinite(got))
    # The tail after " Pod" agrees to 0.001 nats (measured; each byte token within 0.0005); the
    # whole choice differs by 0.24, nearly all of it at " George" (Q4_1 blocks vs fp32 weights).
    assert abs((got[0] - got[1]) - (want[0] - want[1])) < 0.02
    assert np.max(np.abs(got - want)) < 0.5


def test_the_ban_on_byte_tokens_leaves_a_complete_tokens_probabilities_unchanged(lcpp):
    """The retry bans byte tokens from *sampling* only; llama.cpp reports probabilities from the raw
    logits, so a prompt whose greedy token is complete reads the same numbers with and without it."""
    ids = lcpp.encode_text("Zürich is a city. The city of Z")
    plain = lcpp._top(ids, 20)
    banned = lcpp._top(ids, 20, ban_partial_utf8=True)
    assert plain.keys() == banned.keys()
    assert max(abs(plain[t] - banned[t]) for t in plain) < 1e-6
