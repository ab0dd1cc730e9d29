"""hf (transformers) vs openai (llama.cpp's OpenAI-compatible server) on the same GGUF file.

The test starts and stops a real llama-cpp-python server on loopback. transformers
de-quantises the Q4_1 weights to fp32 while llama.cpp computes with the quantised
blocks, so the two are close but not bit-identical; the thresholds below are the
measured agreement with some slack (see benchmarks/RESULTS.md).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest

from judgegap.backends.base import GenRequest
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
                             "--port", str(port), "--n_ctx", "2048", "--model_alias", "smollm2", "--verbose", "False"],
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
def test_hf_and_llamacpp_agree_on_20_squad_items(server, data_dir):
    url, _ = server
    items = load_dataset("squad2", data_dir=data_dir, n=20, seed=11)
    hf = HFBackend("smollm2-135m-instruct")
    oa = OpenAIBackend("smollm2", base_url=url, tokenizer="smollm2-135m-instruct", concurrency=2)
    gen = [QA_GENERATE.render(context=it.context, question=it.question, allow_unanswerable=True) for it in items]
    assert hf.render(gen[0]) == oa.render(gen[0])  # the same text reaches both models
    reqs = [GenRequest(p, max_new_tokens=12) for p in gen]
    a_hf = [clean_answer(c.text) for c in hf.generate(reqs)]
    a_oa = [clean_answer(c.text) for c in oa.generate(reqs)]
    same = sum(x == y for x, y in zip(a_hf, a_oa))
    judge = [QA_JUDGE.render(context=it.context, question=it.question, candidate=a or "unanswerable",
                             allow_unanswerable=True) for it, a in zip(items, a_hf)]
    s_hf = np.array(hf.score_choices(judge, list(JUDGE_CHOICES)))
    s_oa = np.array(oa.score_choices(judge, list(JUDGE_CHOICES)))
    margin_hf, margin_oa = s_hf[:, 0] - s_hf[:, 1], s_oa[:, 0] - s_oa[:, 1]
    rank_agree = float(np.mean(np.sign(margin_hf) == np.sign(margin_oa)))
    corr = float(np.corrcoef(margin_hf, margin_oa)[0, 1])
    print(f"identical greedy answers {same}/20; verdict ranking agreement {rank_agree:.2f}; "
          f"margin correlation {corr:.3f}; max |dlogp| {np.abs(s_hf - s_oa).max():.3f}")
    assert same >= 14
    assert rank_agree >= 0.8 and corr >= 0.8
