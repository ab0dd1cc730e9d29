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

    from judgegap.training.adapters import dependency_deprecations_quiet
    from judgegap.training.sft import IGNORE, masked_lm_loss, target_positions

    torch.manual_seed(0)
    with dependency_deprecations_quiet():  # peft reads transformers' renamed attribute, as in training
        model = get_peft_model(AutoModelForCausalLM.from_pretrained(str(tiny_model)),
                               LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                          task_type="CAUSAL_LM"))
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


@pytest.mark.parametrize("tok", ["one-token-10", "digits"])
def test_mjd_moves_the_self_score_toward_the_reference(tmp_path, data_dir, tiny_model, tiny_digits, tok):
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

    if tok == "digits":  # " 10" = " " + "1" + "0": the target " 1" must also mean "no 0 after it"
        tiny_model = tiny_digits
    steps = 16 if tok == "one-token-10" else 40  # three-token targets: slower to learn on a random model
    cfg = _train_cfg(tmp_path, data_dir, tiny_model, method={"name": "mjd", "params": {"reference": "correct"}},
                     training={"max_steps": steps, "batch_size": 6, "learning_rate": 0.03, "save_steps": steps,
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
    ext = [base.choice_extensions(pr, list(SCORE_CHOICES)) for pr in prompts]

    def p_ref(be):
        return [score_distribution(lp, extensions=e)[0][r]
                for lp, e, r in zip(be.score_choices(prompts, list(SCORE_CHOICES)), ext, refs)]

    pb, pt = p_ref(base), p_ref(tuned)
    rises = sum(t > b for b, t in zip(pb, pt))
    assert rises >= 0.8 * len(pb) and sum(pt) / len(pt) > sum(pb) / len(pb) + 0.04, (pb, pt)
    from judgegap.training.sft import encode_all

    rows, _ = encode_all(base.encoder, examples, 4096)  # each target is trained as -log P(exactly that score)
    for e, row in zip(examples, rows):
        assert row["soft_q"] == [float(s == int(e.target)) for s in range(1, 11)]
        if tok == "digits":
            assert row["soft_ext"][0] == [9]  # " 10" extends " 1": its "0" is pushed down for a target of 1
    ones = [k for k, r in enumerate(refs) if r == 0]  # "exactly 1": where " 10" extends " 1", "0" must not follow
    assert ones and sum(pt[k] > pb[k] for k in ones) >= 0.8 * len(ones), [(pb[k], pt[k]) for k in ones]


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
            if m == "base":  # the tuned model's score of the base model's answer (external_judges: [tuned])
                other = rng.dirichlet(np.ones(10))
                recs[-1]["scores"]["tuned"] = {"dist": list(other), "expected": float(np.dot(other, np.arange(1, 11)))}
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
    # same answers: the base model's answers and labels, each scorer's confidence
    y_base = truth["base"][0]
    c_tuned_on_base = [(r["scores"]["tuned"]["expected"] - 1) / 9 for r in recs if r["model"] == "base"]
    sa = ss["same_answers"]
    assert sa["answers_of"] == "base" and sa["n_items"] == 40
    assert sa["brier"]["base"]["value"] == pytest.approx(brier_score_loss(y_base, truth["base"][1]))
    assert sa["brier"]["tuned"]["value"] == pytest.approx(brier_score_loss(y_base, c_tuned_on_base))
    assert sa["auroc"]["tuned"]["value"] == pytest.approx(roc_auc_score(y_base, c_tuned_on_base))
    assert ss["brier"]["tuned"]["value"] != pytest.approx(sa["brier"]["tuned"]["value"])
    summary = {"config": {"name": "x", "method": {"name": "mjd"}, "model": {"model": "m"}, "seed": 0},
               "training": {"steps": 1, "examples": 1, "seconds_per_step": 1.0, "peak_rss_gib": 1.0,
                            "trainable_parameters": 1, "loss": []},
               "examples": {"by_source": {}, "by_label": {}}, "skipped_too_long": 0, "split": {},
               "evaluation": {"transfer": {}, "reading": [], "selfscore_transfer": {"squad2": ss}}}
    build_training_report(summary, tmp_path / "r.html")
    html = (tmp_path / "r.html").read_text()
    assert 'id="selfscore-transfer-table"' in html and 'id="selfscore-same-answers-table"' in html


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


@pytest.mark.parametrize("on", [False, True])
def test_online_policy_step_follows_the_configured_activation_checkpointing(tmp_path, on):
    """trl's GRPOConfig turns activation checkpointing on by default; SEE's and SERL's policy step used
    it even with ``training.gradient_checkpointing: false`` (the default), ~30% more time a step."""
    import dataclasses
    from types import SimpleNamespace

    from judgegap.training.config import Hyper
    from judgegap.training.methods import SEEParams
    from judgegap.training.see import grpo_arguments

    cfg = SimpleNamespace(training=Hyper(gradient_checkpointing=on), seed=3)
    args = grpo_arguments(SEEParams(), cfg, 1, tmp_path / "grpo", on_gpu=False)
    name = ("activation_checkpointing" if "activation_checkpointing" in {f.name for f in dataclasses.fields(args)}
            else "gradient_checkpointing")
    assert getattr(args, name) is on
    assert args.seed == 4 and args.num_generations == SEEParams().num_generations


def _one_online_round(tmp_path, data_dir, tiny_model, method: str, extra: dict, **cfg_extra):
    """One round of an online method on the tiny model (2 prompts x 2 samples): (cfg, OUT, round 0's
    log text, its parsed log)."""
    params = {"rounds": 1, "prompts_per_round": 2, "num_generations": 2, "batch_size": 4, "max_completion_tokens": 6,
              **extra}
    cfg = _train_cfg(tmp_path, data_dir, tiny_model, method={"name": method, "params": params},
                     training={"batch_size": 4, "learning_rate": 0.01, "max_length": 4096}, **cfg_extra)
    p = cli_inproc("train", str(_write(tmp_path, cfg)), "--no-eval")
    assert p.returncode == 0, p.stderr
    assert "{'loss'" not in p.stdout, p.stdout[:300]  # GRPO's and MJD's Trainer print no log dicts
    out = tmp_path / "tr"
    r0 = (out / "rounds" / "round-0" / "log.json").read_text()
    return cfg, out, r0, json.loads(r0)


def test_see_runs_rounds_logs_reward_parts_and_resumes_after_the_last_round(tmp_path, data_dir, tiny_model):
    """Two SEE rounds on a tiny model (GRPO policy step + MJD step each): per-round logs with the
    reward's parts, an adapter per round; a rerun with --resume and more rounds continues after the
    last complete round without redoing it; the final adapter loads."""
    from judgegap.backends.hf import HFBackend

    cfg, out, r0, log0 = _one_online_round(tmp_path, data_dir, tiny_model, "see", {})
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


# -- soft-target MJD -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_digits(tmp_path_factory):
    """A tiny model whose tokenizer splits digits: " 10" is " " + "1" + "0", " 7" is " " + "7"."""
    from tests.conftest import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tinyd") / "model", seed=1, split_digits=True)


def test_soft_f1_target():
    from judgegap.training.methods import soft_f1_target

    assert soft_f1_target(0.0) == [1.0] + [0.0] * 9 and soft_f1_target(1.0) == [0.0] * 9 + [1.0]
    q = soft_f1_target(0.5)  # 5.5: half 5, half 6
    assert q[4] == pytest.approx(0.5) and q[5] == pytest.approx(0.5) and sum(q) == pytest.approx(1.0)
    for f1 in (0.13, 0.37, 0.71, 0.99):
        q = soft_f1_target(f1)
        assert sum(q) == pytest.approx(1.0) and sum(x > 0 for x in q) <= 2
        assert sum((i + 1) * x for i, x in enumerate(q)) == pytest.approx(1 + 9 * f1)
    with pytest.raises(ValueError):
        soft_f1_target(-0.1)


@pytest.mark.parametrize("which", ["tiny", "digits"])
def test_soft_score_loss_reads_the_selfscore_probabilities(which, tiny_model, tiny_digits, data_dir):
    """The soft loss's P(exactly score s) -- one forward pass, logits only at the score positions --
    must equal what the selfscore experiment reads through score_choices + exact_choice_probs, on a
    tokenizer where " 10" is one token and on one where every score starts with " " and " 10" is
    three tokens; and the loss must be -sum q log of those. Fails if a position is off by one or an
    extension is not subtracted."""
    import math

    import torch

    from judgegap.backends.base import ChatPrompt
    from judgegap.backends.hf import HFBackend
    from judgegap.metrics.scores import SCORE_CHOICES, exact_choice_probs
    from judgegap.training.soft import encode_soft_example, exact_score_logprobs, soft_collator, soft_score_loss
    from judgegap.training.sft import IGNORE
    from transformers import DataCollatorForSeq2Seq

    be = HFBackend(str(tiny_model if which == "tiny" else tiny_digits))
    prompts = [ChatPrompt.of("Rate 1-10.", f"Passage: Paris is the capital{'.' * k} Question: capital?"
                          " Answer: Paris. Score:") for k in range(1, 4)]
    choices = list(SCORE_CHOICES)
    rng = torch.Generator().manual_seed(0)
    qs = [torch.softmax(torch.randn(10, generator=rng), 0).tolist() for _ in prompts]
    qs = [[x / sum(q) for x in q] for q in qs]
    rows = [encode_soft_example(be.encoder, pr, choices, q) for pr, q in zip(prompts, qs)]
    if which == "digits":
        assert max(len(c) for c in rows[0]["soft_tok"]) == 3 and len(rows[0]["soft_pos"]) == 3
    else:
        assert len(rows[0]["soft_pos"]) == 1
    want = [exact_choice_probs(choices, lp, be.choice_extensions(pr, choices))
            for pr, lp in zip(prompts, be.score_choices(prompts, choices))]
    be.tok.padding_side = "right"
    batch = soft_collator(DataCollatorForSeq2Seq(be.tok, label_pad_token_id=IGNORE, padding=True))(
        [dict(r) for r in rows])
    assert (batch["labels"] == IGNORE).all()
    model = be.model
    with torch.no_grad():
        loss = soft_score_loss(model, batch).item()
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        got = []
        for b, r in enumerate(rows):
            node = torch.log_softmax(logits[b, r["soft_pos"]].float(), -1)
            got.append(exact_score_logprobs(node, batch["soft_tok"][b, :, :len(r["soft_pos"])],
                                            batch["soft_ext"][b]).exp().tolist())
    for g, w in zip(got, want):
        assert g == pytest.approx(w, rel=1e-4, abs=1e-8)
    ref = sum(-sum(q * math.log(max(p, 1e-12)) for q, p in zip(qr, w)) for qr, w in zip(qs, want)) / len(qs)
    assert loss == pytest.approx(ref, rel=2e-3)


def test_mjd_soft_targets_from_a_reference_model_move_the_distribution(tmp_path, data_dir, tiny_digits, tiny_model):
    """reference: model + targets: soft: the targets are another model's score distributions on the
    same self-score prompts (recorded), and a few steps move the tuned model's distribution toward
    them (KL(ref || model) falls on most examples). Fails if the soft loss trains the wrong positions."""
    import numpy as np

    from judgegap.backends.hf import HFBackend
    from judgegap.metrics.scores import SCORE_CHOICES, score_distribution
    from judgegap.training.config import parse_train_config
    from judgegap.training.methods import METHODS, TrainContext
    from judgegap.training.pipeline import training_items
    from judgegap.backends import CachedBackend
    from judgegap.store.calls import CallCache

    params = {"reference": "model", "targets": "soft", "own_answers": 0.0,
              "reference_model": {"name": "ref", "model": str(tiny_model)}}
    cfg = _train_cfg(tmp_path, data_dir, tiny_digits, method={"name": "mjd", "params": params},
                     training={"max_steps": 14, "batch_size": 6, "learning_rate": 0.03, "save_steps": 14,
                               "max_length": 4096})
    p = cli_inproc("train", str(_write(tmp_path, cfg)), "--no-eval")
    assert p.returncode == 0, p.stderr
    meta = json.loads((tmp_path / "tr" / "adapter" / "judgegap_adapter.json").read_text())
    assert meta["params"]["targets"] == "soft" and meta["params"]["reference_model"]["name"] == "ref"
    tc = parse_train_config(cfg)
    items, pools, metrics = training_items(tc)
    base = HFBackend(str(tiny_digits))
    method = METHODS.get("mjd")()
    examples = method.build_examples(TrainContext(items=items, pools=pools, metrics=metrics,
                                                  backend=CachedBackend(base, CallCache(tmp_path / "c.sqlite"), "m"),
                                                  model_cfg=tc.model), method.parse_params(params))
    ref_be = HFBackend(str(tiny_model))
    prompts = [e.prompt for e in examples]
    choices = list(SCORE_CHOICES)
    for e, lp in zip(examples, ref_be.score_choices(prompts, choices)):
        d = score_distribution(lp, choices, ref_be.choice_extensions(e.prompt, choices))[0]
        assert e.meta["soft_target"] == pytest.approx(list(d), abs=1e-5) and e.target == f" {e.meta['reference']}"
    tuned = HFBackend(str(tiny_digits), adapter=str(tmp_path / "tr" / "adapter"))

    def kl(be):
        out = []
        for e, lp in zip(examples, be.score_choices(prompts, choices)):
            d = score_distribution(lp, choices, be.choice_extensions(e.prompt, choices))[0]
            q = np.asarray(e.meta["soft_target"])
            out.append(float(np.sum(q * (np.log(np.maximum(q, 1e-12)) - np.log(np.maximum(d, 1e-12))))))
        return out

    kb, kt = kl(base), kl(tuned)
    assert sum(t < b for b, t in zip(kb, kt)) >= 0.8 * len(kb) and np.mean(kt) < np.mean(kb), (kb, kt)


@pytest.mark.parametrize("params,needle", [
    ({"reference": "model"}, "reference: model needs reference_model"),
    ({"reference": "f1", "reference_model": {"name": "r", "model": "smollm2-135m-instruct"}}, "set reference: model"),
    ({"reference": "model", "reference_model": {"name": "r", "model": "/nonexistent/model"}}, "reference_model"),
])
def test_mjd_reference_model_bad_input_is_one_line(tmp_path, data_dir, tiny_model, params, needle):
    cfg = _train_cfg(tmp_path, data_dir, tiny_model, method={"name": "mjd", "params": params})
    p = cli_inproc("train", str(_write(tmp_path, cfg)), "--no-eval")
    assert p.returncode != 0 and needle in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert not (tmp_path / "tr" / "adapter").exists()


def test_group_by_length_batches_pad_less_than_random(tmp_path, tiny_model):
    """training.sampling: group_by_length (the default) puts examples of similar length in one batch,
    so the padded tokens the model runs over are far fewer than under a random shuffle; every
    example is still seen once per epoch."""
    from judgegap.backends.hf import HFBackend
    from judgegap.training.config import Hyper
    from judgegap.training.sft import IGNORE, target_only_trainer, training_arguments
    from datasets import Dataset
    from transformers import DataCollatorForSeq2Seq

    be = HFBackend(str(tiny_model))
    lengths = [8 + (37 * i) % 200 for i in range(64)]
    rows = [{"input_ids": [5] * n, "labels": [IGNORE] * (n - 1) + [6], "attention_mask": [1] * n} for n in lengths]
    padded = {}
    for mode in ("group_by_length", "random"):
        h = Hyper(batch_size=8, sampling=mode)
        args = training_arguments(h, tmp_path / mode, 8, 0, False)
        tr = target_only_trainer(be.model, args, Dataset.from_list(rows),
                                 DataCollatorForSeq2Seq(be.tok, label_pad_token_id=IGNORE, padding=True), [])
        batches = list(tr.get_train_dataloader())
        assert sorted(int(m.sum()) for b in batches for m in b["attention_mask"]) == sorted(lengths)
        padded[mode] = sum(b["input_ids"].numel() for b in batches)
    assert padded["group_by_length"] < 0.8 * padded["random"], padded


# -- serl ----------------------------------------------------------------------------------------

def test_serl_consistency_rewards_on_hand_computed_cases():
    """A pair counts only when both orders agree; identical answers and inconsistent pairs are 0.5."""
    from judgegap.training.serl import consistency_rewards

    # 0 beats 1 in both orders; 0 vs 2 inconsistent (A always wins: position bias); 1 beats 2 in both
    pref = {(0, 1): 0.9, (1, 0): 0.2, (0, 2): 0.8, (2, 0): 0.7, (1, 2): 0.6, (2, 1): 0.45}
    rw, cons, judged = consistency_rewards(["a", "b", "c"], pref)
    assert (cons, judged) == (2, 3)
    assert rw == pytest.approx([(1 + 0.5) / 2, (0 + 1) / 2, (0.5 + 0) / 2])
    # a judge that always prefers position A rewards nobody: all 0.5
    rw, cons, judged = consistency_rewards(["a", "b"], {(0, 1): 0.99, (1, 0): 0.99})
    assert rw == [0.5, 0.5] and (cons, judged) == (0, 1)
    # identical answers are not judged; a group of one gets 0.5
    assert consistency_rewards(["a", "a"], {}) == ([0.5, 0.5], 0, 0)
    assert consistency_rewards(["a"], {}) == ([0.5], 0, 0)
    # a tie at exactly 0.5 decides nothing
    assert consistency_rewards(["a", "b"], {(0, 1): 0.5, (1, 0): 0.5})[0] == [0.5, 0.5]


def test_serl_runs_rounds_without_the_metric_in_the_reward_and_resumes(tmp_path, data_dir, tiny_model):
    """One SERL round on a tiny model: rewards in [0, 1] from the policy's own pairwise judgements,
    the consistency share and the metric diagnostic logged; --resume with two rounds continues after
    round 0; the report has the rounds table."""
    cfg, out, r0, log0 = _one_online_round(tmp_path, data_dir, tiny_model, "serl", {"temperature": 1.5})
    assert log0["samples"] == 4 and 0.0 <= log0["reward"] <= 1.0 and log0["policy_loss"]
    assert 1 <= log0["pairs_judged"] <= 2 and set(log0) >= {"consistency", "quality", "agrees_with_metric"}
    if log0["pairs_judged"]:
        assert 0.0 <= log0["consistency"] <= 1.0
    cfg["method"]["params"]["rounds"] = 2
    p = cli_inproc("train", str(_write(tmp_path, cfg)), "--no-eval", "--resume")
    assert p.returncode == 0, p.stderr
    assert (out / "rounds" / "round-0" / "log.json").read_text() == r0
    s = json.loads((out / "train_summary.json").read_text())["training"]
    assert [r["round"] for r in s["rounds"]] == [0, 1] and s["steps_this_process"] == 1
    html = (out / "report.html").read_text()
    assert 'id="rounds-table"' in html and "consistency" in html


def test_serl_params_bad_input_is_one_line(tmp_path, data_dir, tiny_model):
    cfg = _train_cfg(tmp_path, data_dir, tiny_model,
                     method={"name": "serl", "params": {"num_generations": 3, "batch_size": 4}})
    p = cli_inproc("train", str(_write(tmp_path, cfg)), "--no-eval")
    assert p.returncode != 0 and "multiple of num_generations" in p.stderr and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_online_rounds_log_a_held_out_calibration_probe(tmp_path, data_dir, tiny_model):
    """probe_items: held-out items of the eval datasets (no training id or passage) answered and
    self-scored before the first round and after each: ECE / Brier / AUROC per round in the log, the
    'before' point in the summary, the curve in the report; without eval datasets, one line."""
    from judgegap.training.adapters import passage_hash
    from judgegap.training.config import parse_train_config
    from judgegap.training.methods import TrainContext
    from judgegap.training.pipeline import training_items
    from judgegap.training.probe import probe_set

    ev = [{"name": "squad2", "n": 3, "seed": 5}]
    cfg, out, _, log0 = _one_online_round(tmp_path, data_dir, tiny_model, "serl", {"probe_items": 3}, eval=ev)
    assert log0["probe_n"] == 3 and 0.0 <= log0["probe_brier"] <= 1.0 and "probe_ece" in log0
    s = json.loads((out / "train_summary.json").read_text())["training"]
    assert s["probe_before"]["probe_n"] == 3 and (out / "rounds" / "probe-before.json").is_file()
    assert 'id="probe-curve"' in (out / "report.html").read_text()
    tc = parse_train_config(cfg)
    items, pools, metrics = training_items(tc)
    probe = probe_set(tc, TrainContext(items=items, pools=pools, metrics=metrics, backend=None, model_cfg=tc.model), 3)
    train_ids = {it.id for its in items.values() for it in its}
    train_p = {passage_hash(it.context) for its in items.values() for it in its}
    assert all(it.id not in train_ids and passage_hash(it.context) not in train_p for it in probe.items["squad2"])

    bad = _train_cfg(tmp_path / "b", data_dir, tiny_model, method={"name": "see", "params": {"probe_items": 2}})
    (tmp_path / "b").mkdir()
    p = cli_inproc("train", str(_write(tmp_path / "b", bad)), "--no-eval")
    assert p.returncode != 0 and "probe_items needs eval" in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_a_stopped_evaluation_keeps_only_the_datasets_both_models_finished():
    """When `judgegap train`'s evaluation is interrupted, the transfer matrix is written for the
    datasets where base and tuned have every record (and marked interrupted); a dataset the tuned
    model had only half judged is left out rather than compared on unequal items."""
    from judgegap.training.pipeline import _finished

    gens = ([{"dataset": "squad2", "model": m} for m in ("base", "tuned") for _ in range(3)]
            + [{"dataset": "drop", "model": m} for m in ("base", "tuned") for _ in range(3)])
    judgs = ([{"dataset": "squad2", "judge": m} for m in ("base", "tuned") for _ in range(9)]
             + [{"dataset": "drop", "judge": "base"} for _ in range(9)] + [{"dataset": "drop", "judge": "tuned"}] * 4)
    assert _finished(gens, "model") == {"squad2", "drop"}
    assert _finished(judgs, "judge") == {"squad2"}
    assert _finished([{"dataset": "musique", "model": "base"}], "model") == set()


@pytest.mark.parametrize("ckpt", [False, True])
def test_training_arguments_use_no_deprecated_names(tmp_path, ckpt):
    """The training block becomes TrainingArguments without a FutureWarning (transformers 5 renamed
    gradient_checkpointing to activation_checkpointing), and checkpointing still takes effect."""
    import warnings

    from judgegap.training.config import Hyper
    from judgegap.training.sft import training_arguments

    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        args = training_arguments(Hyper(gradient_checkpointing=ckpt), tmp_path, 4, 0, False)
    assert args.gradient_checkpointing is ckpt
    assert args.gradient_checkpointing_kwargs == ({"use_reentrant": False} if ckpt else None)
