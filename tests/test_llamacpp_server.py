"""hf (transformers) vs openai (llama.cpp's OpenAI-compatible server) on the same GGUF file.

The test starts and stops a real llama-cpp-python server on loopback. transformers
de-quantises the Q4_1 weights to fp32 while llama.cpp computes with the quantised
blocks, so the two are close but not bit-identical; the thresholds below are the
measured agreement with some slack (see benchmarks/RESULTS.md). Where greedy answers
part, the test measures transformers' own top-2 log-prob margin at the first differing
token: answers may only part where the reference's own top-2 margin was small.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest

from judgegap.backends.base import ChatPrompt, GenRequest
from judgegap.backends.hf import HFBackend
from judgegap.backends.models import BUILTIN_MODELS
from judgegap.backends.openai_compat import OpenAIBackend
from judgegap.data import load_dataset
from judgegap.experiments.candidates import clean_answer
from judgegap.prompts import JUDGE_CHOICES, QA_GENERATE, QA_JUDGE

pytest.importorskip("llama_cpp")


@pytest.fixture(scope="module")
def server():
    try:
        gguf = BUILTIN_MODELS["smollm2-135m-instruct"].locate()
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"SmolLM2 not installed: {exc}")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
                             "--port", str(port), "--n_ctx", "2048",
                             "--n_threads", str(os.cpu_count() or 1),  # the server's default is half the cores
                             "--model_alias", "smollm2", "--verbose", "False"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"llama.cpp server exited: {proc.stderr.read().decode()[-500:]}")
        try:
            if httpx.get(url + "/models", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.5)
    yield url, gguf
    proc.terminate()
    proc.wait(timeout=30)


@pytest.mark.slow
def test_hf_and_llamacpp_agree_on_12_squad_items(server, data_dir):
    url, _ = server
    items = load_dataset("squad2", data_dir=data_dir, n=12, seed=11)
    hf = HFBackend("smollm2-135m-instruct")
    oa = OpenAIBackend("smollm2", base_url=url, tokenizer="smollm2-135m-instruct", concurrency=2)
    gen = [QA_GENERATE.render(context=it.context, question=it.question, allow_unanswerable=True) for it in items]
    assert hf.render(gen[0]) == oa.render(gen[0])  # the same text reaches both models
    reqs = [GenRequest(p, max_new_tokens=12) for p in gen]
    c_hf, c_oa = hf.generate(reqs), oa.generate(reqs)
    a_hf = [clean_answer(c.text) for c in c_hf]
    a_oa = [clean_answer(c.text) for c in c_oa]
    same = sum(x == y for x, y in zip(a_hf, a_oa))
    # where the greedy answers part, how close was transformers' own top-2 decision?
    margins, parted = [], []
    for p, x, y, ah, ao in zip(gen, c_hf, c_oa, a_hf, a_oa):
        if ah == ao:
            continue
        xt, yt = x.text.strip(), y.text.strip()
        k = next((i for i, (a, b) in enumerate(zip(xt, yt)) if a != b), min(len(xt), len(yt)))
        raw, j = "", 0
        while j < len(x.tokens) and len((raw + x.tokens[j]).strip()) <= k:
            raw += x.tokens[j]
            j += 1
        top = hf.top_logprobs([ChatPrompt(p.messages, p.assistant_prefix + raw)], 2)[0]
        margins.append(top[0][1] - top[1][1])
        parted.append((xt, yt))
    judge = [QA_JUDGE.render(context=it.context, question=it.question, candidate=a or "unanswerable",
                             allow_unanswerable=True) for it, a in zip(items, a_hf)]
    s_hf = np.array(hf.score_choices(judge, list(JUDGE_CHOICES)))
    s_oa = np.array(oa.score_choices(judge, list(JUDGE_CHOICES)))
    margin_hf, margin_oa = s_hf[:, 0] - s_hf[:, 1], s_oa[:, 0] - s_oa[:, 1]
    rank_agree = float(np.mean(np.sign(margin_hf) == np.sign(margin_oa)))
    corr = float(np.corrcoef(margin_hf, margin_oa)[0, 1])
    print(f"identical greedy answers {same}/{len(items)}; top-2 log-prob margins where they part: "
          f"{[round(m, 3) for m in sorted(margins)]}; verdict ranking agreement {rank_agree:.2f}; "
          f"margin correlation {corr:.3f}; max |dlogp| {np.abs(s_hf - s_oa).max():.3f}; parted: {parted}")
    # Q4_1 de-quantised to fp32 (transformers) vs llama.cpp's quantised kernels (which also round
    # activations to 8 bits). Measured on this machine: on these 12 items 10 identical answers, the 2 that
    # part do so mid-answer where transformers' own top-2 margin was 1.11 and 1.40 nats; verdict margins
    # correlate 0.960, same Yes/No ranking on 11/12, max |d log p| 0.15. (On 20 items: 12/20 identical,
    # partings at margins 0.02-1.97 nats, correlation 0.956, 19/20.) 12 items keep the suite short.
    assert same >= 8
    assert max(margins, default=0) < 2.5, margins  # answers part only where the reference was close
    assert rank_agree >= 0.85 and corr >= 0.9
