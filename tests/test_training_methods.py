"""Training methods beyond the SFT pipeline's basics: the target-only loss, gradient checkpointing,
Masked Judge Distillation (mjd), the SEE reward and its online rounds (see), and the held-out
self-score transfer. (A separate file from test_training.py so pytest-xdist can run them on the
other worker.)"""

from __future__ import annotations

import json

import pytest

from tests.conftest import cli_inproc
from tests.test_training import _train_cfg, _write



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
    assert log0["format_ok"] == 1.0 and 0 < log0["calibration"] <= 1  # assessment mode: always a score
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
