"""judgegap train: the loss mask, that training moves the measured probability, held-out checks,
resume after kill -9, adapters in every experiment, and bad input."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, build_tiny_model, cli_inproc


def _train_cfg(tmp_path: Path, data_dir: Path, model: str, **extra) -> dict:
    cfg = {"name": "t", "output_dir": str(tmp_path / "tr"), "data_dir": str(data_dir), "seed": 0,
           "model": {"name": "m", "model": str(model), "generation": {"max_new_tokens": 4}},
           "method": {"name": "judge-sft"}, "train": [{"name": "squad2", "n": 6, "seed": 0}],
           "training": {"max_steps": 12, "batch_size": 4, "learning_rate": 0.02, "save_steps": 4},
           "lora": {"r": 8, "alpha": 16, "dropout": 0.0}}
    for k, v in extra.items():
        cfg[k] = v
    return cfg


def _write(tmp_path: Path, cfg: dict, name: str = "train.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(cfg))
    return p


# -- training moves the judged probability ---------------------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_dir):
    """One tiny judge-sft training (used by several tests)."""
    tmp = tmp_path_factory.mktemp("trained")
    model = build_tiny_model(tmp / "base")
    cfg = _train_cfg(tmp, data_dir, model)
    with warnings.catch_warnings():
        # peft reads transformers' deprecated is_gradient_checkpointing on every LoRA wrap: a FutureWarning
        # about code that is not the user's, printed on every `judgegap train` until judgegap silenced it
        warnings.filterwarnings("error", message=".*is_gradient_checkpointing", category=FutureWarning)
        p = cli_inproc("train", str(_write(tmp, cfg)), "--no-eval")
    assert p.returncode == 0, p.stderr
    # stdout holds our result lines only: transformers' PrinterCallback printed one log dict per step
    assert "{'loss'" not in p.stdout and "'grad_norm'" not in p.stdout + p.stderr, p.stdout[:300]
    return tmp, model, cfg


def test_adapter_moves_verdict_probability_toward_the_trained_labels(trained):
    """On its training examples the tuned model's log P(target) - log P(other verdict) rises: this
    fails if the labels were flipped, the mask covered the prompt only, or no LoRA weight trained."""
    from judgegap.backends.hf import HFBackend
    from judgegap.prompts import JUDGE_CHOICES, PROMPTS
    from judgegap.training.config import parse_train_config
    from judgegap.training.pipeline import training_items

    tmp, model, cfg = trained
    tc = parse_train_config(cfg)
    items = training_items(tc)[0]["squad2"]
    meta = json.loads((tmp / "tr" / "adapter" / "judgegap_adapter.json").read_text())
    assert sorted(it.id for it in items) == meta["train_ids"] and meta["method"] == "judge-sft"
    judge_t = PROMPTS.get("qa_judge@2")
    prompts = [judge_t.render(context=it.context, question=it.question, candidate=it.answers[0] if it.answers
                              else "unanswerable", allow_unanswerable=True) for it in items]
    from judgegap.metrics.qa import score_item

    labels = [int(score_item("squad2", it.answers[0] if it.answers else "", it)[1] >= 0.5) for it in items]
    base = HFBackend(str(model))
    tuned = HFBackend(str(model), adapter=str(tmp / "tr" / "adapter"))
    lb = base.score_choices(prompts, list(JUDGE_CHOICES))
    lt = tuned.score_choices(prompts, list(JUDGE_CHOICES))

    def margin(lp, y):
        return (lp[0] - lp[1]) if y else (lp[1] - lp[0])

    gain = [margin(t, y) - margin(b, y) for b, t, y in zip(lb, lt, labels)]
    assert sum(gain) / len(gain) > 0.5, gain
    assert tuned.fingerprint()["adapter"] and "adapter" not in base.fingerprint()


def test_adapter_loads_into_every_experiment_and_training_items_are_held_out(trained, tmp_path, data_dir):
    tmp, model, _ = trained
    adapter = tmp / "tr" / "adapter"
    train_ids = set(json.loads((adapter / "judgegap_adapter.json").read_text())["train_ids"])
    cfg = {"name": "e", "output_dir": str(tmp_path / "out"), "data_dir": str(data_dir), "bootstrap_resamples": 100,
           "datasets": [{"name": "squad2", "n": 5, "seed": 0}],
           "models": [{"name": "base", "model": str(model), "generation": {"max_new_tokens": 4}},
                      {"name": "tuned", "model": str(model), "adapter": str(adapter),
                       "generation": {"max_new_tokens": 4}}],
           "experiments": [{"name": "asymmetry", "params": {"text_verdict": False}},
                           {"name": "selfscore", "params": {"text_score": False, "compare": ["base", "tuned"]}},
                           {"name": "attention", "params": {"max_items": 2}},
                           {"name": "pairwise", "params": {"self_pairs": True, "text_verdict": False}}]}
    with warnings.catch_warnings():  # loading the adapter warned as training did (see `trained`)
        warnings.filterwarnings("error", message=".*is_gradient_checkpointing", category=FutureWarning)
        p = cli_inproc("run", str(_write(tmp_path, cfg, "run.yaml")))
    assert p.returncode == 0, p.stderr
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    for exp in ("asymmetry", "selfscore", "attention"):
        assert "tuned" in json.dumps(s["experiments"][exp]), exp
    from judgegap.store import Store

    st = Store.in_dir(tmp_path / "out")
    evaluated = {g["item_id"] for g in st.records("asymmetry", "generation")}
    st.close()
    assert evaluated and not evaluated & train_ids  # the seed-0 sample drew them; exclude_trained dropped them
    # the same config with exclusion off evaluates on trained items: an error, nothing run
    cfg["datasets"][0]["exclude_trained"] = False
    cfg["output_dir"] = str(tmp_path / "out2")
    p = cli_inproc("run", str(_write(tmp_path, cfg, "run2.yaml")))
    assert p.returncode != 0
    line = p.stderr.strip().splitlines()[-1]
    assert "were used to train the adapter of tuned" in line and "held out" in line
    assert not (tmp_path / "out2").exists()


# -- resume after kill -9 ---------------------------------------------------------------------------

def test_killed_training_resumes_from_its_last_checkpoint(tmp_path, data_dir, tiny_model):
    cfg = _train_cfg(tmp_path, data_dir, tiny_model,
                     training={"max_steps": 36, "batch_size": 2, "learning_rate": 0.001, "save_steps": 3})
    path = _write(tmp_path, cfg)
    env = {**os.environ, "JUDGEGAP_DATA_DIR": str(data_dir)}
    proc = subprocess.Popen([sys.executable, "-m", "judgegap.cli", "train", str(path), "--no-eval"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ckpt = tmp_path / "tr" / "checkpoints" / "checkpoint-3"
    t0 = time.time()
    while not (ckpt / "trainer_state.json").exists() and proc.poll() is None and time.time() - t0 < 300:
        time.sleep(0.2)
    assert proc.poll() is None, "training ended before it could be killed: " + (proc.stderr.read() or "")
    time.sleep(0.5)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "tr" / "adapter").exists()
    (tmp_path / "tr" / "checkpoints" / "checkpoint-33").mkdir(exist_ok=True)  # as a kill mid-save leaves it
    again = cli_inproc("train", str(path), "--no-eval")  # refuses to start over silently
    assert again.returncode != 0 and "--resume" in again.stderr
    p = cli_inproc("train", str(path), "--no-eval", "--resume")
    assert p.returncode == 0, p.stderr
    s = json.loads((tmp_path / "tr" / "train_summary.json").read_text())
    assert s["training"]["steps"] == 36 and s["training"]["resumed_from"]
    assert s["training"]["steps_this_process"] < 36


def test_resume_skips_a_checkpoint_the_kill_left_half_written(tmp_path):
    """Trainer writes trainer_state.json last: a folder without it was cut off mid-save (seen in CI:
    killed while checkpoint-6 held no weights yet) and resuming from it fails inside transformers."""
    from judgegap.training.sft import last_checkpoint

    ck = tmp_path / "checkpoints"
    for step, complete in ((3, True), (6, False), (12, True), (15, False)):
        d = ck / f"checkpoint-{step}"
        d.mkdir(parents=True)
        (d / "adapter_model.safetensors").write_bytes(b"x")
        if complete:
            (d / "trainer_state.json").write_text("{}")
    assert last_checkpoint(ck) == str(ck / "checkpoint-12")
    (ck / "checkpoint-12" / "trainer_state.json").unlink()
    assert last_checkpoint(ck) == str(ck / "checkpoint-3")
    (ck / "checkpoint-3" / "trainer_state.json").unlink()
    assert last_checkpoint(ck) is None


# -- bad input: one line, non-zero, nothing written ------------------------------------------------

def _bad(tmp_path: Path, cfg: dict, *needles: str, cmd: str = "train") -> None:
    p = cli_inproc(cmd, str(_write(tmp_path, cfg, "bad.yaml")))
    assert p.returncode != 0
    line = p.stderr.strip().splitlines()[-1]
    for n in needles:
        assert n in line, line
    assert not (tmp_path / "tr").exists() and not (tmp_path / "out").exists()


def test_method_the_backend_cannot_train(tmp_path, data_dir):
    cfg = _train_cfg(tmp_path, data_dir, "served-model")
    cfg["model"].update(backend="openai", base_url="http://127.0.0.1:9/v1")
    _bad(tmp_path, cfg, "judge-sft", "cannot train a model behind backend 'openai'")


def test_too_few_training_items(tmp_path, data_dir, tiny_model):
    f = tmp_path / "few.json"
    src = json.loads(__import__("gzip").open(data_dir / "squad_v2_dev_cs224n" / "dev-v2.0.json.gz").read())
    para = src["data"][0]["paragraphs"][0]
    f.write_text(json.dumps({"data": [{"title": "t", "paragraphs": [para]}]}))
    cfg = _train_cfg(tmp_path, data_dir, tiny_model, train=[{"name": "squad2", "n": 400, "data_file": str(f)}])
    _bad(tmp_path, cfg, "train[0] (squad2)", "n=400 training items requested", "available")


def test_missing_adapter_and_adapter_of_another_base(tmp_path, data_dir, trained):
    tmp, model, _ = trained
    run = {"name": "e", "output_dir": str(tmp_path / "out"), "data_dir": str(data_dir),
           "datasets": [{"name": "squad2", "n": 2}], "experiments": ["asymmetry"],
           "models": [{"name": "tuned", "model": str(model), "adapter": str(tmp_path / "nope")}]}
    _bad(tmp_path, run, "models[0]: adapter: adapter not found", cmd="run")
    other = build_tiny_model(tmp_path / "other", seed=1)
    run["models"][0].update(model=str(other), adapter=str(tmp / "tr" / "adapter"))
    _bad(tmp_path, run, "models[0] (tuned)", "was trained on base model", cmd="run")
    run["models"][0].update(backend="llamacpp", model="smollm2-135m-instruct")
    _bad(tmp_path, run, "models[0] (tuned)", "was trained on base model", cmd="run")  # llamacpp checks it too
    run["models"][0].update(backend="openai", model="served", base_url="http://127.0.0.1:9/v1")
    _bad(tmp_path, run, "adapter", "backend 'openai' cannot apply a LoRA adapter", cmd="run")


def test_unknown_method_and_bad_params(tmp_path, data_dir, tiny_model):
    cfg = _train_cfg(tmp_path, data_dir, tiny_model, method={"name": "judge-stf"})
    _bad(tmp_path, cfg, "method.name", "judge-stf")
    cfg = _train_cfg(tmp_path, data_dir, tiny_model, method={"name": "judge-sft", "params": {"own_answer": 1}})
    _bad(tmp_path, cfg, "method.params.own_answer")
    cfg = _train_cfg(tmp_path, data_dir, tiny_model, method={"name": "see", "params": {"batch_size": 5}})
    _bad(tmp_path, cfg, "method.params.batch_size", "must be a multiple of num_generations (4)")
    cfg = _train_cfg(tmp_path, data_dir, tiny_model, method={"name": "mjd", "params": {"reference": "judge"}})
    _bad(tmp_path, cfg, "method.params.reference")


def test_example_configs_validate():
    from judgegap.training.config import load_train_config

    for f in sorted((ROOT / "configs").glob("train_*.yaml")):
        load_train_config(f)


def test_transfer_matrix_on_records_with_known_answers():
    """Paired differences on hand-built records: tuned answers every item right and accepts none of
    its wrong answers; base is right on half and accepts all its answers."""
    from judgegap.training.transfer import reading, transfer_matrix

    gens, judgs = [], []
    for i in range(40):
        iid = f"q{i}"
        base_ok = int(i % 2 == 0)
        gens += [{"dataset": "d", "model": "base", "item_id": iid, "correct": base_ok},
                 {"dataset": "d", "model": "tuned", "item_id": iid, "correct": 1}]
        judgs += [{"dataset": "d", "judge": "base", "author": "base", "item_id": iid, "label": base_ok, "p_correct": 0.9},
                  {"dataset": "d", "judge": "tuned", "author": "tuned", "item_id": iid, "label": 1,
                   "p_correct": 0.6 + 0.01 * (i % 3)}]
        for judge, p_gold, p_wrong in (("base", 0.7, 0.6), ("tuned", 0.8, 0.2)):
            judgs += [{"dataset": "d", "judge": judge, "author": "gold", "item_id": iid, "label": 1, "p_correct": p_gold},
                      {"dataset": "d", "judge": judge, "author": "wrong_span", "item_id": iid, "label": 0,
                       "p_correct": p_wrong}]
    m = transfer_matrix(gens, judgs, "base", "tuned", resamples=200)["d"]
    assert m["n_items"] == 40
    assert m["gen_accuracy"]["base"]["value"] == 0.5 and m["gen_accuracy"]["tuned"]["value"] == 1.0
    assert m["gen_accuracy"]["diff"]["value"] == 0.5 and m["gen_accuracy"]["diff"]["ci_low"] > 0.3
    assert m["judge_j_balanced"]["base"]["value"] == 0.0 and m["judge_j_balanced"]["tuned"]["value"] == 1.0
    assert m["accept_wrong_own"]["base"]["value"] == 1.0
    assert m["judge_j_own"]["tuned"]["value"] is None or m["judge_j_own"]["tuned"]["value"] != m["judge_j_own"]["tuned"]["value"]
    lines = reading({"d": m}, "judge-sft")
    assert "reversed: generation accuracy rose" in lines[0]


def test_training_report_page(trained):
    tmp, _, _ = trained
    html = (tmp / "tr" / "report.html").read_text()
    assert 'id="loss"' in html and "data:image/png;base64," in html and "judge-sft" in html


def test_full_finetune_of_a_tiny_model_with_held_out_evaluation(tmp_path, data_dir, tiny_model):
    """full_finetune writes a whole model; the evaluation runs base vs tuned on held-out items and
    writes the transfer matrix and the report."""
    cfg = _train_cfg(tmp_path, data_dir, tiny_model, full_finetune=True,
                     training={"max_steps": 2, "batch_size": 4, "learning_rate": 0.001, "save_steps": 1},
                     eval=[{"name": "squad2", "n": 4, "seed": 0}],
                     evaluate={"bootstrap_resamples": 100})
    p = cli_inproc("train", str(_write(tmp_path, cfg)))
    assert p.returncode == 0, p.stderr
    out = tmp_path / "tr"
    assert (out / "adapter" / "config.json").is_file() and (out / "adapter" / "judgegap_adapter.json").is_file()
    s = json.loads((out / "train_summary.json").read_text())
    m = s["evaluation"]["transfer"]["squad2"]
    assert m["n_items"] == 4 and set(m) >= {"gen_accuracy", "judge_j_own", "accept_wrong_own"}
    from judgegap.store import Store

    st = Store.in_dir(out / "eval")
    evaluated = {g["item_id"] for g in st.records("asymmetry", "generation")}
    st.close()
    assert not evaluated & set(json.loads((out / "split.json").read_text())["squad2"]["ids"])
    html = (out / "report.html").read_text()
    assert 'id="transfer-table"' in html and "eval/report.html" in html
    assert "tuned − base" in p.stdout or "tuned" in p.stdout


def test_adapter_fingerprint_is_stable_across_saves_of_the_same_adapter(trained, tmp_path):
    """peft writes target_modules from a set (its order changes with each process's string hashing) and a
    machine-local base path; the same weights and settings must keep one call-cache identity.
    Before: a finished training resumed (the adapter saved again) missed every cached tuned call."""
    import shutil

    from judgegap.training.adapters import adapter_fingerprint

    src = trained[0] / "tr" / "adapter"
    cfg = json.loads((src / "adapter_config.json").read_text())
    assert len(cfg["target_modules"]) > 1
    variants = {"reordered": {**cfg, "target_modules": list(reversed(sorted(cfg["target_modules"]))),
                              "base_model_name_or_path": "/elsewhere/model"},
                "other_rank": {**cfg, "r": cfg["r"] * 2}}
    fps = {}
    for name, c in variants.items():
        d = tmp_path / name
        shutil.copytree(src, d)
        (d / "adapter_config.json").write_text(json.dumps(c, indent=2))
        fps[name] = adapter_fingerprint(d)
    assert fps["reordered"] == adapter_fingerprint(src)
    assert fps["other_rank"] != adapter_fingerprint(src)


def test_a_freshly_converted_gguf_names_its_converted_folder_like_a_cached_load(tmp_path, monkeypatch):
    """The first load of a GGUF converts it; the model then named the GGUF's folder (no config.json)
    as its origin, while every later load names the converted folder. peft looks for the base's
    config.json there on every adapter save, so the first training on a GGUF warned "Could not find a
    config file in .../gguf" at each checkpoint (and recorded that folder as the adapter's base)."""
    from peft import LoraConfig, get_peft_model

    from judgegap.backends.hf import HFBackend
    from judgegap.training.adapters import dependency_deprecations_quiet

    monkeypatch.setenv("JUDGEGAP_CACHE_DIR", str(tmp_path / "cache"))  # nothing converted yet
    first = HFBackend("smollm2-135m-instruct").model
    again = HFBackend("smollm2-135m-instruct").model
    conv = Path(again.name_or_path)
    assert (conv / "config.json").is_file() and conv.is_relative_to(tmp_path / "cache")
    assert Path(first.name_or_path) == conv and first.config._name_or_path == again.config._name_or_path
    with dependency_deprecations_quiet():
        peft_model = get_peft_model(first, LoraConfig(r=2, target_modules=["q_proj"], task_type="CAUSAL_LM"))
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="Could not find a config file")
        peft_model.save_pretrained(str(tmp_path / "adapter"))
    assert json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())["base_model_name_or_path"] == str(conv)


def test_train_dry_run_checks_what_training_checks_and_writes_nothing(tmp_path, data_dir, tiny_model):
    """``train --dry-run``: the plan (training items and passages, held-out items with the training
    items and their passages excluded) after every check the training makes, exit 0, no output dir;
    a bad config is the training's own line."""
    from judgegap.data import load_dataset
    from judgegap.training.adapters import passage_hash

    # held out: every SQuAD 2.0 item (n null) less the 400 trained on and every item sharing a passage
    cfg = _train_cfg(tmp_path, data_dir, tiny_model, train=[{"name": "squad2", "n": 400, "seed": 0}],
                     eval=[{"name": "squad2", "n": None}, {"name": "drop", "n": 7, "seed": 0}])
    p = cli_inproc("train", str(_write(tmp_path, cfg)), "--dry-run")
    assert p.returncode == 0, p.stderr
    trained = load_dataset("squad2", n=400, seed=0, data_dir=data_dir)
    passages = {passage_hash(it.context) for it in trained}
    everything = load_dataset("squad2", n=None, data_dir=data_dir)
    left = [it for it in everything if passage_hash(it.context) not in passages]
    assert 0 < len(left) < len(everything) - 400  # same-passage questions go too, not only the 400
    assert re.search(rf"squad2\s*│\s*400\s*│\s*{len(passages)}\s*│", p.stdout), p.stdout
    assert re.search(rf"squad2\s*│\s*all\s*│\s*{len(left)}\s*│", p.stdout), p.stdout
    assert re.search(r"drop\s*│\s*7\s*│\s*7\s*│", p.stdout)
    assert "12 steps" in p.stdout and "would start a new training" in p.stdout
    assert not (tmp_path / "tr").exists()
    # the held-out sample the plan counted is the one the evaluation would draw: none trained on
    from judgegap.config import parse_config
    from judgegap.experiments.runner import load_items
    from judgegap.training.config import parse_train_config
    from judgegap.training.pipeline import eval_config, split_record, training_items

    tc = parse_train_config(cfg)
    split = split_record(training_items(tc)[0])
    run_cfg = parse_config(eval_config(tc, tmp_path / "tr", None))
    ids, passages = set(split["squad2"]["ids"]), set(split["squad2"]["passages"])
    held = load_items(run_cfg, run_cfg.datasets[0], {"t": (ids, passages)})[0]
    assert len(held) == len(left) and not any(it.id in ids or passage_hash(it.context) in passages for it in held)
    # a bad config: the same one line as the training, nothing written
    bad = _train_cfg(tmp_path, data_dir, tiny_model, train=[{"name": "squad2", "n": 10 ** 6}])
    real = cli_inproc("train", str(_write(tmp_path, bad, "bad.yaml")))
    dry = cli_inproc("train", str(_write(tmp_path, bad, "bad.yaml")), "--dry-run")
    assert dry.returncode != 0 and dry.stderr.strip().splitlines()[-1] == real.stderr.strip().splitlines()[-1]
    assert "n=1000000 training items requested" in dry.stderr and not (tmp_path / "tr").exists()
