"""The hf backend on a tiny random-weight model: scoring paths agree, errors are one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from judgegap.backends.base import ChatPrompt, GenRequest
from judgegap.backends.hf import HFBackend
from judgegap.errors import BackendError


@pytest.fixture(scope="module")
def backend(tiny_model):
    return HFBackend(str(tiny_model))


def _prompts():
    ctx = "Passage: Zürich is a city. The quick brown fox jumps over the lazy dog. " * 4
    return [ChatPrompt.of("You judge.", f"{ctx}\nProposed answer: {c}\nCorrect?", "Verdict:")
            for c in ("Paris", "the fox", "café")] + [ChatPrompt.of(None, "Say yes or no", "Verdict:")]


def _direct(backend, prompt, choice):
    text = backend.render(prompt)
    ids = backend.encode(prompt)
    full = backend.tok(text + choice, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        lp = backend.model(input_ids=torch.tensor([full])).logits[0].float().log_softmax(-1)
    return sum(float(lp[len(ids) - 1 + j, full[len(ids) + j]]) for j in range(len(full) - len(ids)))


@pytest.mark.parametrize("choices", [[" Yes", " No"], [" 1", " 10", " unanswerable"]])
def test_score_choices_matches_direct_computation_with_and_without_prefix_sharing(backend, choices):
    ps = _prompts()
    backend.prefix_sharing = True
    shared = np.array(backend.score_choices(ps, choices))
    saved = backend.prefix_tokens_saved
    backend.prefix_sharing = False
    plain = np.array(backend.score_choices(ps, choices))
    backend.prefix_sharing = True
    assert saved > 0
    assert np.allclose(shared, plain, atol=1e-4)
    direct = np.array([[_direct(backend, p, c) for c in choices] for p in ps])
    assert np.allclose(shared, direct, atol=1e-4)


def test_prefix_sharing_passes_the_kv_cache_under_the_name_transformers_takes(backend):
    """transformers 5.25 renamed forward()'s ``past_key_values`` to ``cache`` and drops the old name in
    5.40: passed under the old name then, the shared prefix's KV cache would no longer reach the rows."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*past_key_values.*", category=FutureWarning)
        backend.prefix_sharing = True
        before = backend.prefix_tokens_saved
        scores = backend.score_choices(_prompts(), [" Yes", " No"])
    assert backend.prefix_tokens_saved > before and np.isfinite(np.array(scores)).all()


def test_top_logprobs_agrees_with_score_choices(backend):
    ps = _prompts()[:2]
    top = backend.top_logprobs(ps, 3)
    tok, lp = top[0][0]
    assert backend.score_choices(ps[:1], [tok])[0][0] == pytest.approx(lp, abs=1e-4) or tok.strip() == ""
    assert all(a[1] >= b[1] for a, b in zip(top[0], top[0][1:]))


def test_generate_is_deterministic_and_batched_like_single(backend):
    reqs = [GenRequest(p, max_new_tokens=6, stop=()) for p in _prompts()]
    batched = backend.generate(reqs)
    single = [backend.generate([r])[0] for r in reqs]
    assert [c.text for c in batched] == [c.text for c in single]
    assert all(c.n_tokens == len(c.token_logprobs) <= 6 for c in batched)
    assert all(lp <= 0 for c in batched for lp in c.token_logprobs)


def test_stop_strings_cut_the_text(backend):
    req = GenRequest(_prompts()[0], max_new_tokens=12, stop=())
    full = backend.generate([req])[0].text
    if len(full) > 3:
        stop = full[2:4]
        cut = backend.generate([GenRequest(_prompts()[0], max_new_tokens=12, stop=(stop,))])[0].text
        assert stop not in cut and full.startswith(cut)


def test_attentions_are_available(backend):
    ids = backend.encode(_prompts()[0])
    logits, att = backend.forward_attentions(ids)
    assert len(att) == 2 and att[0].shape[-1] == len(ids)
    assert torch.allclose(att[0][0].sum(-1), torch.ones(att[0].shape[1:3]), atol=1e-4)


def test_bad_models_give_one_clear_error(tmp_path):
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"NOTAGGUF" * 10)
    with pytest.raises(BackendError, match="not a GGUF file"):
        HFBackend(str(fake))
    with pytest.raises(BackendError, match="unknown model"):
        HFBackend("no-such-model")
    with pytest.raises(BackendError, match="no config.json"):
        HFBackend(str(tmp_path))


def test_batches_do_not_depend_on_free_memory(tiny_model, monkeypatch):
    """Before: the CPU token budget came from psutil's available memory, so the same config batched
    differently under load (and could flip greedy near-ties)."""
    import psutil

    from judgegap.backends.hf import HFBackend

    be = HFBackend(str(tiny_model))
    lengths = [300, 280, 250, 240, 200, 120, 90, 60, 30, 20] * 3
    plans = []
    for avail in (64 << 30, 300 << 20, 20 << 20):
        monkeypatch.setattr(psutil, "virtual_memory", lambda a=avail: type("VM", (), {"available": a})())
        plans.append((be._batches(lengths, generate=True), be._batches(lengths)))
    assert plans[0] == plans[1] == plans[2]
    assert be.stats()["batching"]["generate_token_budget"] == 4096
