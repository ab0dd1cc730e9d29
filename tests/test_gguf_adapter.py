"""A PEFT LoRA adapter applied by llama.cpp (``backend: llamacpp`` + ``adapter:``): the same effect on
the real SmolLM2 GGUF as transformers gives it, its own call-cache identity, and exact-or-refuse."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import yaml

pytest.importorskip("xllamacpp")
pytest.importorskip("peft")

from judgegap.backends.base import ChatPrompt  # noqa: E402
from judgegap.errors import BackendError  # noqa: E402
from tests.conftest import cli_inproc  # noqa: E402

MODEL = "smollm2-135m-instruct"
pytestmark = pytest.mark.slow
PROMPTS = [ChatPrompt(messages=(("user", "Passage: The cat sat on the mat in the kitchen of a flat in Paris.\n"
                                          "Question: Where did the cat sit?"),), assistant_prefix="Answer:"),
           ChatPrompt(messages=(("user", "Is the answer 'the mat' correct? Reply Yes or No."),),
                      assistant_prefix="Verdict:")]
CHOICES = [" Yes", " No", " the mat", " Paris", " on the mat in the kitchen", " unanswerable"]


@pytest.fixture(scope="module")
def random_lora(tmp_path_factory):
    """A LoRA on every linear layer of SmolLM2 (as transformers loads the GGUF) with random B, so the
    adapter moves log-probabilities by several nats; and the transformers scores with it applied."""
    import torch
    from peft import LoraConfig, get_peft_model

    from judgegap.backends.hf import HFBackend
    from judgegap.training.adapters import dependency_deprecations_quiet

    d = tmp_path_factory.mktemp("lora") / "adapter"
    torch.manual_seed(0)
    hf = HFBackend(MODEL)
    base = np.array([hf.score_choices([p], CHOICES)[0] for p in PROMPTS])
    with dependency_deprecations_quiet():  # peft reads transformers' renamed attribute, as in training
        hf.model = get_peft_model(hf.model, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear",
                                                       task_type="CAUSAL_LM"))
    with torch.no_grad():
        for n, w in hf.model.named_parameters():
            if "lora_B" in n:
                w.normal_(0.0, 0.3)
    hf.model.eval()
    tuned = np.array([hf.score_choices([p], CHOICES)[0] for p in PROMPTS])
    hf.model.save_pretrained(str(d))
    return d, base, tuned


def test_llama_cpp_applies_the_adapter_as_transformers_does(random_lora):
    """The adapter's effect (tuned − base log-probability of each choice) through llama.cpp matches
    transformers'. Measured: effects up to 14 nats, relative error 0.03, tuned scores within 0.69 nats
    of transformers'; without the llama-architecture Q/K row permutation the relative error is 0.47 and
    the tuned scores are 10.3 nats off."""
    from judgegap.backends.llamacpp import LlamaCppBackend

    d, hf_base, hf_tuned = random_lora
    lb = LlamaCppBackend(MODEL, n_threads=1)
    lt = LlamaCppBackend(MODEL, adapter=str(d), n_threads=1)
    try:
        l_base = np.array([lb.score_choices([p], CHOICES)[0] for p in PROMPTS])
        l_tuned = np.array([lt.score_choices([p], CHOICES)[0] for p in PROMPTS])
        assert lt.fingerprint()["adapter"] and "adapter" not in lb.fingerprint()  # own call-cache identity
        assert lt.stats()["adapter"] == str(d)
    finally:
        lb.close()
        lt.close()
    eff_hf, eff_l = hf_tuned - hf_base, l_tuned - l_base
    rel = np.linalg.norm(eff_l - eff_hf) / np.linalg.norm(eff_hf)
    print(json.dumps({"max_effect": float(np.abs(eff_hf).max()), "relative_error": float(rel),
                      "max_abs_tuned_gap": float(np.abs(l_tuned - hf_tuned).max())}))
    assert np.abs(eff_hf).max() > 3.0  # the adapter does something measurable
    assert rel < 0.1
    assert np.abs(l_tuned - hf_tuned).max() < 2.0


def test_what_llama_cpp_cannot_apply_exactly_is_refused(random_lora, tmp_path, data_dir):
    """DoRA, trained biases, or a module with no tensor in the GGUF: one line at config load, before
    any model call, naming the adapter and the reason."""
    from judgegap.training.gguf_adapter import peft_to_gguf_lora

    d, _, _ = random_lora
    from judgegap.backends.models import resolve_builtin

    gguf = resolve_builtin(MODEL)
    for change, needle in (({"use_dora": True}, "DoRA"), ({"bias": "all"}, "trained biases"),
                           ({"modules_to_save": ["lm_head"]}, "modules_to_save")):
        bad = tmp_path / f"bad-{next(iter(change))}"
        shutil.copytree(d, bad)
        cfg = json.loads((bad / "adapter_config.json").read_text())
        (bad / "adapter_config.json").write_text(json.dumps({**cfg, **change}))
        run = {"name": "e", "output_dir": str(tmp_path / "out"), "data_dir": str(data_dir),
               "datasets": [{"name": "squad2", "n": 2}], "experiments": ["asymmetry"],
               "models": [{"name": "tuned", "backend": "llamacpp", "model": MODEL, "adapter": str(bad)}]}
        (tmp_path / "c.yaml").write_text(yaml.safe_dump(run))
        p = cli_inproc("run", str(tmp_path / "c.yaml"))
        lines = [x for x in p.stderr.strip().splitlines() if x.strip()]
        assert p.returncode != 0 and len(lines) == 1 and needle in lines[0] and str(bad) in lines[0], p.stderr
        assert not (tmp_path / "out").exists()
    # a LoRA weight on a module the GGUF has no tensor for (SmolLM2 ties lm_head to the embeddings)
    from safetensors.torch import load_file, save_file

    extra = tmp_path / "extra"
    shutil.copytree(d, extra)
    w = load_file(str(extra / "adapter_model.safetensors"))
    a = next(v for k, v in w.items() if k.endswith("q_proj.lora_A.weight"))
    w["base_model.model.lm_head.lora_A.weight"] = a.clone()
    w["base_model.model.lm_head.lora_B.weight"] = a.new_zeros((49152, a.shape[0]))
    save_file(w, str(extra / "adapter_model.safetensors"))
    with pytest.raises(BackendError, match="module 'lm_head' has no tensor"):
        peft_to_gguf_lora(extra, gguf, tmp_path / "x.gguf")


def test_a_llamacpp_model_with_an_adapter_runs_the_experiments(random_lora, tmp_path, data_dir):
    """``adapter:`` on a llamacpp model entry, through `judgegap run`: base and tuned side by side,
    each with its own cached calls (the tuned answers differ). The random adapter is scaled down to a
    tenth here: at full size " Yes" / " No" fall outside llama.cpp's top 1,024 tokens and every verdict
    needs a full-vocabulary ask (~10 s each on this CPU)."""
    from safetensors.torch import load_file, save_file

    d = tmp_path / "gentle"
    shutil.copytree(random_lora[0], d)
    w = load_file(str(d / "adapter_model.safetensors"))
    save_file({k: v * 0.1 if "lora_B" in k else v for k, v in w.items()}, str(d / "adapter_model.safetensors"))
    run = {"name": "e", "output_dir": str(tmp_path / "out"), "data_dir": str(data_dir),
           "datasets": [{"name": "squad2", "n": 2}], "bootstrap_resamples": 100,
           "models": [{"name": n, "backend": "llamacpp", "model": MODEL, "n_threads": 1,
                       "generation": {"max_new_tokens": 8}, **extra}
                      for n, extra in (("base", {}), ("tuned", {"adapter": str(d)}))],
           "experiments": [{"name": "asymmetry", "params": {"judges": "self", "text_verdict": False}}]}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(run))
    p = cli_inproc("run", str(tmp_path / "c.yaml"))
    assert p.returncode == 0, p.stderr
    from judgegap.store import Store

    st = Store.in_dir(tmp_path / "out")
    try:
        gens = {(r["model"], r["item_id"]): r["raw_text"] for r in st.records("asymmetry", "generation")}
        judged = st.records("asymmetry", "judgment")
    finally:
        st.close()
    assert len(gens) == 4 and {r["judge"] for r in judged} == {"base", "tuned"}
    assert any(gens[("base", i)] != gens[("tuned", i)] for _, i in gens)


def test_training_can_evaluate_on_llama_cpp(tmp_path, data_dir, tiny_model):
    """``evaluate.backend: llamacpp``: the evaluation config runs base and tuned through llama.cpp on the
    base GGUF, the tuned entry with the adapter; a base that is not a GGUF file is refused before training."""
    from judgegap.training.config import parse_train_config
    from judgegap.training.pipeline import eval_config

    cfg = {"name": "t", "output_dir": str(tmp_path / "tr"), "data_dir": str(data_dir),
           "model": {"name": "m", "model": MODEL, "generation": {"max_new_tokens": 8}, "dtype": "float32"},
           "method": {"name": "judge-sft"}, "train": [{"name": "squad2", "n": 20}],
           "eval": [{"name": "squad2", "n": 5, "seed": 1}],
           "evaluate": {"backend": "llamacpp", "model_options": {"n_threads": 1}}}
    ev = eval_config(parse_train_config(cfg), tmp_path / "tr", tmp_path / "tr" / "adapter")
    base, tuned = ev["models"]
    assert base == {"name": "base", "backend": "llamacpp", "model": MODEL, "chat_template": "auto",
                    "generation": base["generation"], "n_threads": 1}
    assert base["generation"]["max_new_tokens"] == 8
    assert tuned == {**base, "name": "tuned", "adapter": str(tmp_path / "tr" / "adapter")}
    cfg["model"]["model"] = str(tiny_model)
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(cfg))
    p = cli_inproc("train", str(tmp_path / "t.yaml"))
    lines = [x for x in p.stderr.strip().splitlines() if x.strip()]
    assert p.returncode != 0 and "llamacpp loads GGUF files" in lines[-1], p.stderr
    assert not (tmp_path / "tr").exists()
    cfg.update(full_finetune=True)
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(cfg))
    p = cli_inproc("train", str(tmp_path / "t.yaml"))
    assert p.returncode != 0 and "full_finetune writes a transformers model folder" in p.stderr, p.stderr
