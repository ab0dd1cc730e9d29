"""judgegap train: the loss mask, that training moves the measured probability, held-out checks,
resume after kill -9, adapters in every experiment, and bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
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
    p = cli_inproc("train", str(_write(tmp, cfg)), "--no-eval")
    assert p.returncode == 0, p.stderr
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
    again = cli_inproc("train", str(path), "--no-eval")  # refuses to start over silently
    assert again.returncode != 0 and "--resume" in again.stderr
    p = cli_inproc("train", str(path), "--no-eval", "--resume")
    assert p.returncode == 0, p.stderr
    s = json.loads((tmp_path / "tr" / "train_summary.json").read_text())
    assert s["training"]["steps"] == 36 and s["training"]["resumed_from"]
    assert s["training"]["steps_this_process"] < 36


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
    _bad(tmp_path, run, "adapter", "backend 'llamacpp' cannot apply a LoRA adapter", cmd="run")


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


def test_target_only_loss_equals_transformers_loss_and_gradients(tiny_model):
    """masked_lm_loss computes logits only where a target token is predicted; its value and its
    gradients must equal transformers' own masked loss on the same labels (padded batch, LoRA-wrapped,
    with and without num_items_in_batch). It fails if the positions are shifted by one."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from judgegap.training.sft import IGNORE, masked_lm_loss, target_positions

    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(str(tiny_model)),
                           LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    ids = torch.randint(3, 300, (3, 12))
    labels = torch.full_like(ids, IGNORE)
    labels[0, 10:12] = ids[0, 10:12]  # two target tokens (" 10" is two tokens in some tokenizers)
    labels[1, 7] = ids[1, 7]
    labels[2, 5] = ids[2, 5]
    att = torch.ones_like(ids)
    att[2, 6:] = 0  # right padding after the target
    labels[2, 6:] = IGNORE
    batch = {"input_ids": ids, "attention_mask": att, "labels": labels}
    keep = target_positions(labels)
    assert keep.sum() == 4 and keep[0, 9] and keep[0, 10] and keep[1, 6] and keep[2, 4] and not keep[0, 11]

    def grads(loss):
        model.zero_grad()
        loss.backward()
        return [p.grad.clone() for p in model.parameters() if p.requires_grad]

    ref = model(**batch).loss
    mine = masked_lm_loss(model, batch)
    assert mine.item() == pytest.approx(ref.item(), rel=1e-5)
    for a, b in zip(grads(model(**batch).loss), grads(masked_lm_loss(model, batch))):
        assert torch.allclose(a, b, atol=1e-6)
    ref_n = model(**batch, num_items_in_batch=torch.tensor(8)).loss  # accumulation over a larger batch
    assert masked_lm_loss(model, batch, torch.tensor(8)).item() == pytest.approx(ref_n.item(), rel=1e-5)


def test_f1_reference_score():
    from judgegap.metrics.scores import f1_reference_score

    assert [f1_reference_score(x) for x in (0.0, 0.05, 0.06, 0.5, 0.94, 1.0)] == [1, 1, 2, 6, 9, 10]
    with pytest.raises(ValueError):
        f1_reference_score(1.2)


def test_mjd_moves_the_self_score_toward_the_reference(tmp_path, data_dir, tiny_model):
    """Masked Judge Distillation on a tiny model: the loss is on the score tokens of the self-score
    prompt, the target 10 for answers the official metric accepts and 1 otherwise. Each example's
    target is checked against the official metric independently, and a few steps must raise the
    probability (among the ten scores) of each training example's reference score -- this fails if
    the mask misses the score tokens or the target is not a score. (The held-out self-score transfer
    is tested on known records below.)"""
    from judgegap.backends.hf import HFBackend
    from judgegap.metrics.qa import score_item
    from judgegap.metrics.scores import SCORE_CHOICES, SCORES, score_distribution
    from judgegap.training.config import parse_train_config
    from judgegap.training.methods import METHODS, TrainContext
    from judgegap.training.pipeline import training_items

    cfg = _train_cfg(tmp_path, data_dir, tiny_model, method={"name": "mjd", "params": {"reference": "correct"}},
                     training={"max_steps": 16, "batch_size": 6, "learning_rate": 0.03, "save_steps": 16,
                               "max_length": 4096})
    p = cli_inproc("train", str(_write(tmp_path, cfg)), "--no-eval")
    assert p.returncode == 0, p.stderr
    out = tmp_path / "tr"
    tc = parse_train_config(cfg)
    items, pools, metrics = training_items(tc)
    base = HFBackend(str(tiny_model))
    method = METHODS.get("mjd")()
    examples = method.build_examples(TrainContext(items=items, pools=pools, metrics=metrics, backend=base,
                                                  model_cfg=tc.model), method.parse_params(tc.method.params))
    by_id = {it.id: it for it in items["squad2"]}
    assert {e.source for e in examples} >= {"own", "gold", "wrong_span"}
    for e in examples:
        ok = score_item("squad2", e.meta["candidate"], by_id[e.item_id])[1] >= 0.5
        assert e.target == (" 10" if ok else " 1") and e.label == int(ok)
    tuned = HFBackend(str(tiny_model), adapter=str(out / "adapter"))
    prompts = [e.prompt for e in examples]
    refs = [list(SCORES).index(int(e.target)) for e in examples]
    ext = [base.choice_extensions(pr, list(SCORE_CHOICES)) for pr in prompts]  # the tiny tokenizer: " 10" is one token

    def p_ref(be):
        return [score_distribution(lp, extensions=e)[0][r]
                for lp, e, r in zip(be.score_choices(prompts, list(SCORE_CHOICES)), ext, refs)]

    pb, pt = p_ref(base), p_ref(tuned)
    rises = sum(t > b for b, t in zip(pb, pt))
    assert rises >= 0.8 * len(pb) and sum(pt) / len(pt) > sum(pb) / len(pb) + 0.04, (pb, pt)


def test_selfscore_transfer_on_records_with_known_answers(tmp_path):
    """tuned - base self-score measures on hand-made records: Brier and AUROC equal scikit-learn's, top-k
    agreement counts the reference score (1 + 9 F1) among the k most probable scores; the report shows it."""
    import numpy as np
    from sklearn.metrics import brier_score_loss, roc_auc_score

    from judgegap.report.training_view import build_training_report
    from judgegap.training.transfer import selfscore_transfer

    rng = np.random.default_rng(0)
    recs, truth = [], {"base": ([], [], []), "tuned": ([], [], [])}
    for m in ("base", "tuned"):
        for i in range(40):
            f1 = float(rng.choice([0.0, 1.0, 0.5]))
            dist = rng.dirichlet(np.ones(10) * (0.3 if m == "tuned" else 3.0))
            correct = int(f1 >= 0.5)
            expected = float(np.dot(dist, np.arange(1, 11)))
            ref = 1 + int(np.floor(9 * f1 + 0.5))
            recs.append({"dataset": "squad2", "model": m, "item_id": f"q{i}", "f1": f1, "correct": correct,
                         "scores": {m: {"dist": list(dist), "expected": expected}}})
            truth[m][0].append(correct)
            truth[m][1].append((expected - 1) / 9)
            truth[m][2].append(ref in list(np.argsort(-dist, kind="stable")[:3] + 1))
    ss = selfscore_transfer(recs, "base", "tuned", resamples=200)["squad2"]
    assert ss["n_items"] == 40
    for m in ("base", "tuned"):
        y, c, top3 = truth[m]
        assert ss["brier"][m]["value"] == pytest.approx(brier_score_loss(y, c))
        assert ss["auroc"][m]["value"] == pytest.approx(roc_auc_score(y, c))
        assert ss["top3_reference"][m]["value"] == pytest.approx(np.mean(top3))
    assert ss["brier"]["diff"]["value"] == pytest.approx(ss["brier"]["tuned"]["value"] - ss["brier"]["base"]["value"])
    summary = {"config": {"name": "x", "method": {"name": "mjd"}, "model": {"model": "m"}, "seed": 0},
               "training": {"steps": 1, "examples": 1, "seconds_per_step": 1.0, "peak_rss_gib": 1.0,
                            "trainable_parameters": 1, "loss": []},
               "examples": {"by_source": {}, "by_label": {}}, "skipped_too_long": 0, "split": {},
               "evaluation": {"transfer": {}, "reading": [], "selfscore_transfer": {"squad2": ss}}}
    build_training_report(summary, tmp_path / "r.html")
    assert 'id="selfscore-transfer-table"' in (tmp_path / "r.html").read_text()


def test_gradient_checkpointing_trains_the_same_first_step(tmp_path, data_dir, tiny_model):
    """training.gradient_checkpointing recomputes activations (less memory); the first step's loss is
    the same as without it (same data, same seed), and an adapter is written."""
    losses = []
    for ckpt in (False, True):
        d = tmp_path / str(ckpt)
        d.mkdir()
        cfg = _train_cfg(d, data_dir, tiny_model, method={"name": "gen-sft"},  # no own answers to generate: quick
                         training={"max_steps": 1, "batch_size": 4, "learning_rate": 0.02, "save_steps": 1,
                                   "gradient_checkpointing": ckpt})
        p = cli_inproc("train", str(_write(d, cfg)), "--no-eval")
        assert p.returncode == 0, p.stderr
        s = json.loads((d / "tr" / "train_summary.json").read_text())
        losses.append(s["training"]["loss"][0]["loss"])
        assert (d / "tr" / "adapter" / "adapter_config.json").is_file()
    assert losses[0] == pytest.approx(losses[1], rel=1e-4)


def test_see_reward_on_hand_computed_cases():
    from judgegap.training.reward import RewardWeights, see_reward, split_scored_reply

    # quality 1, self 10 vs reference 10: 0.7 * 1 + 0.3 * 1
    assert see_reward(1.0, 10, 10)["reward"] == pytest.approx(1.0)
    # quality 0.5, self 8 vs reference 5.5: calibration (1 - 2.5 / 9) ** 2 = 0.52160...
    r = see_reward(0.5, 8, 5.5)
    assert r["calibration"] == pytest.approx((1 - 2.5 / 9) ** 2) and r["reward"] == pytest.approx(0.35 + 0.3 * (6.5 / 9) ** 2)
    # quality 0, self 10 vs reference 1: calibration 0, reward 0
    assert see_reward(0.0, 10, 1)["reward"] == pytest.approx(0.0)
    # no readable score: the format penalty, whatever the quality
    assert see_reward(1.0, None, 10) == {"quality": 1.0, "calibration": 0.0, "format_ok": 0.0, "reward": -1.0}
    assert see_reward(1.0, 11, 10)["reward"] == -1.0
    w = RewardWeights(w_quality=0.5, w_calibration=0.5, gamma=1.0, format_penalty=-2.0)
    assert see_reward(0.4, 4, 7, w)["reward"] == pytest.approx(0.2 + 0.5 * (1 - 3 / 9))
    with pytest.raises(ValueError):
        see_reward(1.5, 5, 5)
    assert split_scored_reply(" Denver Broncos\nScore: 9") == ("Denver Broncos", 9)
    assert split_scored_reply("Paris Score: 10") == ("Paris", 10)
    assert split_scored_reply("1999\nScore: 7 (fairly sure)") == ("1999", 7)
    assert split_scored_reply("no score here") == ("no score here", None)


def test_see_runs_rounds_logs_reward_parts_and_resumes_after_the_last_round(tmp_path, data_dir, tiny_model):
    """Two SEE rounds on a tiny model (GRPO policy step + MJD step each): per-round logs with the
    reward's parts, an adapter per round; a rerun with --resume and more rounds continues after the
    last complete round without redoing it; the final adapter loads."""
    from judgegap.backends.hf import HFBackend

    params = {"rounds": 1, "prompts_per_round": 2, "num_generations": 2, "batch_size": 4, "max_completion_tokens": 6}
    cfg = _train_cfg(tmp_path, data_dir, tiny_model, method={"name": "see", "params": params},
                     training={"batch_size": 4, "learning_rate": 0.01, "max_length": 4096})
    p = cli_inproc("train", str(_write(tmp_path, cfg)), "--no-eval")
    assert p.returncode == 0, p.stderr
    out = tmp_path / "tr"
    r0 = (out / "rounds" / "round-0" / "log.json").read_text()
    log0 = json.loads(r0)
    assert log0["samples"] == 2 * 2 and set(log0) >= {"quality", "calibration", "format_ok", "reward", "mjd_loss"}
    assert log0["mjd_examples"] == 4 and log0["mjd_loss"]
    cfg["method"]["params"]["rounds"] = 2
    p = cli_inproc("train", str(_write(tmp_path, cfg)), "--no-eval", "--resume")
    assert p.returncode == 0, p.stderr
    assert (out / "rounds" / "round-0" / "log.json").read_text() == r0  # round 0 was not redone
    s = json.loads((out / "train_summary.json").read_text())["training"]
    assert [r["round"] for r in s["rounds"]] == [0, 1] and s["resumed_from"] == "round-0"
    assert s["steps_this_process"] == 1
    tuned = HFBackend(str(tiny_model), adapter=str(out / "adapter"))
    assert tuned.fingerprint()["adapter"]
    html = (out / "report.html").read_text()
    assert 'id="rounds-table"' in html
