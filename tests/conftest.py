"""Shared fixtures: where the real data is, and a tiny random-weight model built from a config."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REAL_DATA = Path(os.environ.get("JUDGEGAP_DATA_DIR", ROOT.parent / "shared" / "data"))


def real_data_dir() -> Path:
    if not (REAL_DATA / "squad_v2_dev_cs224n").is_dir():
        pytest.skip(f"real shared data not found at {REAL_DATA}")
    return REAL_DATA


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return real_data_dir()


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, tmp_path, monkeypatch):
    # converted GGUF weights are shared across tests (slow to make); the call cache is per test
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):  # workers share one model cache (conversions are slow)
        base = base.parent
    cache = Path(os.environ.get("JUDGEGAP_TEST_CACHE", base / "cache"))
    monkeypatch.setenv("JUDGEGAP_CACHE_DIR", str(Path(os.environ.get("JUDGEGAP_CACHE_DIR", cache))))
    monkeypatch.setenv("JUDGEGAP_CALL_CACHE", str(tmp_path / "calls.sqlite"))


def call_cache_file() -> Path:
    """The call cache this test's runs use (set per test by the autouse fixture)."""
    return Path(os.environ["JUDGEGAP_CALL_CACHE"])


CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def build_tiny_model(path: Path, seed: int = 0, split_digits: bool = False) -> Path:
    """A 2-layer random Llama with a byte-level BPE tokenizer trained here (no download).
    ``split_digits``: digits pre-split one by one, so " 10" is several tokens (as in the bundled models)."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers, decoders
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    if split_digits:
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                     pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tok.decoder = decoders.ByteLevel()
    corpus = ["Passage: Paris is the capital of France. Question: What is the capital? Answer: Paris",
              "Yes No yes no correct incorrect unanswerable Verdict: 1 2 3 4 5 6 7 8 9 10",
              "The quick brown fox jumps over the lazy dog. Zürich, naïve café — “quotes”."] * 20
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   bos_token="<|im_start|>")
    fast.chat_template = CHATML
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(fast), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                      eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id, bos_token_id=fast.bos_token_id,
                      tie_word_embeddings=False)
    model = LlamaForCausalLM(cfg)
    model.generation_config.eos_token_id = fast.eos_token_id
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    fast.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "judgegap.cli", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=timeout)


def write_json(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))
    return path


def cli_inproc(*args: str) -> subprocess.CompletedProcess:
    """The CLI's own ``main()`` in this process (no interpreter start-up or re-imports): same
    argument parsing, error lines and exit codes as ``python -m judgegap``."""
    import contextlib
    import io

    from judgegap.cli import main

    import signal

    out, err = io.StringIO(), io.StringIO()
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    argv = sys.argv
    code = 0
    sys.argv = ["judgegap", *args]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main()
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = argv
        for s, h in handlers.items():
            signal.signal(s, h)
    return subprocess.CompletedProcess(["judgegap", *args], code, out.getvalue(), err.getvalue())


def count_calls(db: Path) -> int:
    """Rows in a call cache (0 while it does not exist yet or is locked)."""
    import sqlite3

    try:
        with sqlite3.connect(db, timeout=1) as c:
            return c.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
    except sqlite3.Error:
        return 0


def run_then_kill_9(args: list[str], min_calls: int, timeout: float = 240) -> None:
    """Start ``judgegap ARGS`` in a process, wait until the call cache holds ``min_calls`` rows,
    then kill -9 it (the test fails if the run ended first)."""
    import signal
    import time

    db = call_cache_file()
    proc = subprocess.Popen([sys.executable, "-m", "judgegap.cli", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while count_calls(db) < min_calls and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
