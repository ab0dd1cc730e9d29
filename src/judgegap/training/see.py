"""``see``: calibration-coupled online learning (seed 002's SEE), rounds of a policy step and a
Masked Judge Distillation step on the same LoRA adapter.

Each round takes a fresh window of training prompts (cycling through the training items in a
seeded order) and

1. **policy step** (trl's ``GRPOTrainer``): ``num_generations`` sampled answers per prompt; each
   sample's reward is judgegap.training.reward.see_reward -- the answer's official F1 as quality,
   the agreement of the model's own score of that answer with the reference (1 + 9 F1, or 10 / 1
   by correctness). The own score is, by default (``self_score: assessment``), the current
   policy's expected score under the separate self-score prompt -- what the selfscore experiment
   reads, and always readable; with ``self_score: reply`` it is the "Score: N" the policy writes
   after its answer (SEE's own format), and a reply without one gets the format penalty. (Small
   models rarely follow that format: SmolLM2-135M wrote no score in any of its first 8 replies,
   so every reward was the penalty and the policy step had nothing to learn from.)
2. **MJD step**: the round's sampled answers through the separate self-score prompt (what the
   selfscore experiment reads), loss on the score tokens only, target the reference
   (judgegap.training.sft's target-only loss).

The reward's parts (mean quality, calibration, format rate, reward) and the MJD loss are logged
per round; the adapter is saved after every round (``OUT/rounds/round-K/``) and ``--resume``
continues after the last complete round. The final adapter goes to ``OUT/adapter``.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from pathlib import Path
from typing import Any



def _rounds_done(out: Path) -> list[int]:
    d = out / "rounds"
    return sorted(int(p.name.split("-")[1]) for p in d.glob("round-*")
                  if (p / "log.json").is_file() and (p / "adapter").is_dir()) if d.is_dir() else []


def prompt_windows(ctx: Any, rounds: int, per_round: int, seed: int) -> list[list[tuple[str, Any]]]:
    """Per round, ``per_round`` (dataset, item) pairs: all training items in a seeded order, cycled,
    so every round gets fresh prompts until the items run out."""
    pool = [(ds, it) for ds, items in sorted(ctx.items.items()) for it in items]
    random.Random(seed).shuffle(pool)
    return [[pool[(r * per_round + k) % len(pool)] for k in range(per_round)] for r in range(rounds)]


def grpo_step(model: Any, be: Any, rows: list[dict[str, Any]], reward: Any, p: Any, cfg: Any, r: int,
              rdir: Path) -> tuple[Any, list[float]]:
    """One GRPO policy update (trl) over ``rows`` (prompt + key columns) with ``reward``; the updated
    model and its per-step losses."""
    from datasets import Dataset
    from trl import GRPOTrainer

    from judgegap.training.sft import quiet

    gargs = grpo_arguments(p, cfg, r, rdir / "grpo", be.device == "cuda")
    grpo = quiet(GRPOTrainer(model=model, reward_funcs=[reward], args=gargs, train_dataset=Dataset.from_list(rows),
                             processing_class=be.tok))
    grpo.train()
    return grpo.model, [float(x["loss"]) for x in grpo.state.log_history if "loss" in x]


def grpo_arguments(p: Any, cfg: Any, r: int, output_dir: Path, on_gpu: bool) -> Any:
    """trl ``GRPOConfig`` for round ``r``'s policy update from the method's params and ``training:``.

    Activation checkpointing follows ``training.gradient_checkpointing`` as in every supervised step:
    trl's GRPOConfig turns it on by default, so without passing it the online methods recomputed
    activations (~30% more time a step) while the config said it was off."""
    from trl import GRPOConfig

    from judgegap.training.sft import checkpointing_arguments, run_arguments

    return GRPOConfig(
        output_dir=str(output_dir), per_device_train_batch_size=p.batch_size,
        num_generations=p.num_generations, max_completion_length=p.max_completion_tokens,
        temperature=p.temperature, num_train_epochs=1, learning_rate=cfg.training.learning_rate,
        save_strategy="no", beta=p.kl_beta,
        **checkpointing_arguments(GRPOConfig, cfg.training.gradient_checkpointing),
        **run_arguments(cfg.seed + r, on_gpu))


def policy_rows(be: Any, gen_t: Any, window: list[tuple[str, Any]], unans: dict[str, bool]) -> list[dict[str, Any]]:
    """The GRPO dataset of one round: the rendered answer prompt and a ``dataset|id`` key per item."""
    return [{"prompt": be.render(gen_t.render(context=it.context, question=it.question,
                                              allow_unanswerable=unans[ds])), "key": f"{ds}|{it.id}"}
            for ds, it in window]


def scoring(model: Any, fn: Any) -> Any:
    """Run ``fn`` (a scoring pass of the current policy) with the model in eval mode."""
    was_training = model.training
    model.eval()
    try:
        return fn()
    finally:
        model.train(was_training)


def online_rounds(be: Any, ctx: Any, cfg: Any, p: Any, out: Path, resume: bool, progress: Any, label: str,
                  one_round: Any, generate_template: str) -> dict[str, Any]:
    """The rounds loop shared by the online methods: a LoRA adapter (or the last complete round's on
    --resume), a fresh prompt window per round, ``one_round(model, r, window, rdir) -> (model, log)``,
    the held-out probe's calibration before the first round and after each (``p.probe_items``), the
    adapter and log saved after each round (the log last: it marks the round complete), the final
    adapter in OUT/adapter, and the training summary."""
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import set_seed

    from judgegap.training.sft import peak_rss_gib

    done = _rounds_done(out) if resume else []  # none complete yet (killed in round 0): start at round 0
    start = done[-1] + 1 if done else 0
    if done:
        model = PeftModel.from_pretrained(be.model, str(out / "rounds" / f"round-{done[-1]}" / "adapter"),
                                          is_trainable=True)
    else:
        model = get_peft_model(be.model, LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha,
                                                    lora_dropout=cfg.lora.dropout,
                                                    target_modules=cfg.lora.target_modules, task_type="CAUSAL_LM"))
    windows = prompt_windows(ctx, p.rounds, p.prompts_per_round, cfg.seed)
    rounds_log = [json.loads((out / "rounds" / f"round-{r}" / "log.json").read_text()) for r in done]
    probe_fn = None
    before = None
    if p.probe_items:
        from judgegap.training.probe import probe_calibration, probe_set

        probe = probe_set(cfg, ctx, p.probe_items)

        def probe_fn(m: Any) -> dict[str, Any]:
            got = probe_calibration(be, m, probe, cfg.model, generate_template, p.score_template,
                                    getattr(p, "f1_threshold", 0.5))
            return {k: (None if isinstance(v, float) and v != v else v) for k, v in got.items()}  # NaN -> null

        before_file = out / "rounds" / "probe-before.json"
        if before_file.is_file():
            before = json.loads(before_file.read_text())
        else:
            before = probe_fn(model)
            before_file.parent.mkdir(parents=True, exist_ok=True)
            before_file.write_text(json.dumps(before, indent=1))
    task = progress.add_task(f"{label} rounds", total=p.rounds) if progress is not None else None
    if task is not None:
        progress.update(task, completed=start)
    t_all = time.perf_counter()
    for r in range(start, p.rounds):
        t0 = time.perf_counter()
        set_seed(cfg.seed + r)
        rdir = out / "rounds" / f"round-{r}"
        model, log = one_round(model, r, windows[r], rdir)
        if probe_fn is not None:
            log |= probe_fn(model)
        log = {"round": r, **log, "seconds": round(time.perf_counter() - t0, 2)}
        model.save_pretrained(str(rdir / "adapter"))
        (rdir / "log.json").write_text(json.dumps(log, indent=1))  # written last: marks the round complete
        for sub in ("grpo", "mjd"):
            shutil.rmtree(rdir / sub, ignore_errors=True)
        rounds_log.append(log)
        if task is not None:
            progress.update(task, completed=r + 1)
    target, tmp = out / "adapter", out / "adapter.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp))
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    model.eval()
    be.tok.padding_side = "left"
    secs = [x["seconds"] for x in rounds_log]
    on_gpu = be.device == "cuda"
    last_loss = [{"step": x["round"] + 1, "loss": (x.get("mjd_loss") or x.get("policy_loss"))[-1]}
                 for x in rounds_log if x.get("mjd_loss") or x.get("policy_loss")]
    return {"steps": len(rounds_log), "rounds": rounds_log, "probe_before": before,
            "resumed_from": f"round-{done[-1]}" if done else None,
            "steps_this_process": p.rounds - start, "train_seconds": round(time.perf_counter() - t_all, 2),
            "seconds_per_step": round(sum(secs) / len(secs), 3) if secs else None, "step_unit": "round",
            "examples": sum(x["samples"] for x in rounds_log), "loss": last_loss,
            "final_loss": last_loss[-1]["loss"] if last_loss else None,
            "peak_rss_gib": round(peak_rss_gib(), 3),
            "peak_gpu_gib": round(torch.cuda.max_memory_allocated() / 2**30, 3) if on_gpu else None,
            "trainable_parameters": int(sum(q.numel() for q in model.parameters() if q.requires_grad))}


def train_see(be: Any, ctx: Any, cfg: Any, p: Any, out: Path, resume: bool, progress: Any = None) -> dict[str, Any]:
    from datasets import Dataset
    from transformers import DataCollatorForSeq2Seq

    from judgegap.experiments.candidates import clean_answer, display_answer
    from judgegap.metrics.qa import score_item
    from judgegap.metrics.scores import SCORE_CHOICES, expected_score, f1_reference_score, score_distribution
    from judgegap.prompts import PROMPTS
    from judgegap.training.methods import Example, one_hot_score
    from judgegap.training.reward import RewardWeights, see_reward, split_scored_reply
    from judgegap.training.sft import IGNORE, encode_all, steps_for, target_only_trainer, training_arguments
    from judgegap.training.soft import soft_collator

    h = cfg.training
    gen_t, score_t = PROMPTS.get(p.policy_template), PROMPTS.get(p.score_template)
    weights = RewardWeights(p.w_quality, p.w_calibration, p.gamma, p.format_penalty)
    unans = {ds: any(not it.answerable for it in ctx.pools[ds]) for ds in ctx.items}
    on_gpu = be.device == "cuda"

    def one_round(model: Any, r: int, window: list[tuple[str, Any]], rdir: Path) -> tuple[Any, dict[str, Any]]:
        by_key = {f"{ds}|{it.id}": (ds, it) for ds, it in window}
        rows = policy_rows(be, gen_t, window, unans)
        parts: list[dict[str, float]] = []
        samples: list[tuple[str, str, float]] = []

        def assessed(keys: list[str], preds: list[str]) -> list[float]:
            """The current policy's expected self-score of each answer (separate self-score prompt)."""
            prompts = [score_t.render(context=by_key[k][1].context, question=by_key[k][1].question,
                                      candidate=display_answer(pr), allow_unanswerable=unans[by_key[k][0]])
                       for k, pr in zip(keys, preds)]
            lps = scoring(model, lambda: be.score_choices(prompts, list(SCORE_CHOICES)))  # be.model has the LoRA
            return [expected_score(score_distribution(lp, extensions=be.choice_extensions(pr, list(SCORE_CHOICES)))[0])
                    for lp, pr in zip(lps, prompts)]

        def reward(prompts: list[str], completions: list[str], key: list[str], **_: Any) -> list[float]:
            out_r = []
            replies = [split_scored_reply(t) if p.self_score == "reply" else (t.strip().split("\n", 1)[0], None)
                       for t in completions]
            preds = [clean_answer(a) for a, _ in replies]
            selfs = [s for _, s in replies] if p.self_score == "reply" else assessed(list(key), preds)
            for pred, self_score, k in zip(preds, selfs, key):
                ds, it = by_key[k]
                f1 = score_item(ctx.metrics[ds], pred, it)[1]
                ref = f1_reference_score(f1) if p.reference == "f1" else (10 if f1 >= p.f1_threshold else 1)
                got = see_reward(f1, self_score, ref, weights)
                parts.append(got)
                samples.append((k, pred, f1))
                out_r.append(got["reward"])
            return out_r

        model, policy_loss = grpo_step(model, be, rows, reward, p, cfg, r, rdir)
        # MJD on the round's samples: the separate self-score prompt, loss on the score tokens only
        examples = []
        for k, pred, f1 in samples:
            ds, it = by_key[k]
            ref = f1_reference_score(f1) if p.reference == "f1" else (10 if f1 >= p.f1_threshold else 1)
            prompt = score_t.render(context=it.context, question=it.question, candidate=display_answer(pred),
                                    allow_unanswerable=unans[ds])
            examples.append(Example(prompt, f" {ref}", "own_sample", it.id, ds, int(f1 >= p.f1_threshold),
                                    {"soft_target": one_hot_score(ref), "soft_choices": list(SCORE_CHOICES)}))
        enc_rows, _ = encode_all(be.encoder, examples, h.max_length)
        mjd_loss: list[float] = []
        if enc_rows:
            be.tok.padding_side = "right"
            sargs = training_arguments(h, rdir / "mjd", steps_for(len(enc_rows), h, p.mjd_epochs), cfg.seed + r,
                                       on_gpu, save=False)
            sft = target_only_trainer(model, sargs, Dataset.from_list(enc_rows), soft_collator(
                DataCollatorForSeq2Seq(be.tok, label_pad_token_id=IGNORE, padding=True)), [])
            sft.train()
            be.tok.padding_side = "left"
            mjd_loss = [float(x["loss"]) for x in sft.state.log_history if "loss" in x]
        n = max(1, len(parts))
        return model, {"prompts": len(rows), "samples": len(parts),
                       "quality": sum(x["quality"] for x in parts) / n,
                       "calibration": sum(x["calibration"] for x in parts) / n,
                       "format_ok": sum(x["format_ok"] for x in parts) / n,
                       "reward": sum(x["reward"] for x in parts) / n,
                       "policy_loss": policy_loss, "mjd_examples": len(enc_rows), "mjd_loss": mjd_loss}

    return online_rounds(be, ctx, cfg, p, out, resume, progress, "SEE", one_round, p.policy_template)
