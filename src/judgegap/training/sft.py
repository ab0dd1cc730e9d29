"""Masked supervised fine-tuning with LoRA (peft) on transformers' ``Trainer``.

Why ``Trainer`` with our own tokenisation rather than trl's ``SFTTrainer``: the loss mask must
cover exactly the tokens the experiments later read (the verdict " Yes" as the model tokenises
it *after this prompt*), so examples are encoded by the backend's own ``encode`` and
``continuation_ids`` — the functions ``score_choices`` uses — and handed over as ``input_ids``
and ``labels`` (-100 on every prompt token). ``Trainer`` takes that labels column as it is;
checkpoints, ``resume_from_checkpoint`` and seeding are its own.
"""

from __future__ import annotations

import math
import resource
import time
from pathlib import Path
from typing import Any

from judgegap.errors import JudgegapError

IGNORE = -100


def encode_example(enc: Any, prompt: Any, target: str) -> tuple[list[int], list[int]]:
    """(input_ids, labels) for one example; labels are -100 except on the target's tokens.
    ``enc`` is the backend's :class:`~judgegap.backends.hf.PromptEncoder` (the scoring path's)."""
    text = enc.render(prompt)
    ids = enc.encode(prompt)
    cont = enc.continuation_ids(text, ids, target)
    return ids + cont, [IGNORE] * len(ids) + list(cont)


def encode_all(enc: Any, examples: list[Any], max_length: int) -> tuple[list[dict[str, list[int]]], int]:
    """Encoded rows, and how many examples were longer than ``max_length`` (skipped, counted)."""
    from judgegap.training.soft import encode_soft_example

    rows, too_long = [], 0
    for ex in examples:
        soft = ex.meta.get("soft_target")
        if soft is not None:  # a distribution over ex.meta["soft_choices"] (soft-target MJD)
            row = encode_soft_example(enc, ex.prompt, ex.meta["soft_choices"], soft)
        else:
            ids, labels = encode_example(enc, ex.prompt, ex.target)
            row = {"input_ids": ids, "labels": labels, "attention_mask": [1] * len(ids)}
        if len(row["input_ids"]) > max_length:
            too_long += 1
            continue
        rows.append(row)
    if len({"soft_q" in r for r in rows}) > 1:
        raise JudgegapError("a training set mixes soft-target and hard-target examples")
    return rows, too_long


def target_positions(labels: Any) -> Any:
    """Boolean (batch, seq) mask of the positions whose logits predict a target token: position j
    predicts token j + 1, so j is kept where ``labels[:, j + 1]`` is not -100."""
    import torch

    keep = torch.zeros_like(labels, dtype=torch.bool)
    keep[:, :-1] = labels[:, 1:] != IGNORE
    return keep


def kept_logits(model: Any, inputs: dict[str, Any], keep: Any) -> Any:
    """(kept positions, vocab) logits for the True entries of the boolean (batch, seq) ``keep``, in
    row-major order, computed only there where the model's forward takes a boolean ``logits_to_keep``."""
    logits = model(**inputs, logits_to_keep=keep).logits
    n = int(keep.sum())
    if logits.ndim == 2 and logits.shape[0] == n:
        return logits
    if logits.ndim == 3 and logits.shape[:2] == keep.shape:  # a model that ignores a boolean mask
        return logits[keep]
    raise JudgegapError("this model's forward does not support logits_to_keep; cannot compute a masked loss")


def masked_lm_loss(model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None) -> Any:
    """The causal-LM loss on the target tokens, computing logits only where a target is predicted.

    Equal to transformers' own loss on the same ``labels`` (tested), but the full-vocabulary logits
    -- and their gradients -- exist for a handful of positions per example instead of every one:
    for judge-sft (one target token after a ~300-token prompt, a 49k vocabulary) that is most of
    the training step's memory. Normalised as transformers does: by ``num_items_in_batch`` (target
    tokens over the accumulated batch) when given, else the mean over this batch's targets."""
    import torch.nn.functional as F

    labels = inputs["labels"]
    keep = target_positions(labels)
    rest = {k: v for k, v in inputs.items() if k != "labels"}
    logits = kept_logits(model, rest, keep)
    targets = labels[:, 1:][keep[:, :-1]]
    loss = F.cross_entropy(logits.float(), targets, reduction="sum")
    denom = num_items_in_batch if num_items_in_batch is not None else max(1, int(targets.numel()))
    return loss / denom


def target_only_trainer(model: Any, args: Any, dataset: Any, collator: Any, callbacks: list[Any]) -> Any:
    """A transformers ``Trainer`` whose loss is :func:`masked_lm_loss` (logits at target positions only)."""
    from transformers import Trainer

    from judgegap.training.soft import soft_score_loss

    class TargetOnlyTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # noqa: ANN001
            if "soft_q" in inputs:  # a batch mean: let Trainer divide by the accumulation steps
                self.loss_is_scaled_for_ga = False
                loss = soft_score_loss(model, inputs)
            else:
                loss = masked_lm_loss(model, inputs, num_items_in_batch)
            return (loss, None) if return_outputs else loss

    return quiet(TargetOnlyTrainer(model=model, args=args, train_dataset=dataset, data_collator=collator,
                                   callbacks=callbacks))


def quiet(trainer: Any) -> Any:
    """Drop transformers' PrinterCallback (added when tqdm is off): it prints every step's log dict to
    stdout, which holds judgegap's result lines. Losses stay in ``state.log_history`` and our curves."""
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    return trainer


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def last_checkpoint(ckpt_dir: Path) -> str | None:
    """The newest *complete* Trainer checkpoint. Trainer writes ``trainer_state.json`` after the weights,
    optimizer and RNG state, so a folder without it was cut off mid-save by a kill and cannot be resumed."""
    if not ckpt_dir.is_dir():
        return None
    found = sorted((p for p in ckpt_dir.glob("checkpoint-*")
                    if p.name.split("-")[-1].isdigit() and (p / "trainer_state.json").is_file()),
                   key=lambda p: int(p.name.split("-")[-1]))
    return str(found[-1]) if found else None


def run_arguments(seed: int, on_gpu: bool) -> dict[str, Any]:
    """The settings every trainer of ours shares (SFT, the SEE/SERL GRPO step and their MJD step):
    CPU or bf16 GPU, seeded, no reporting or tqdm (our own progress bar), every step logged."""
    import torch

    return {"seed": seed, "data_seed": seed, "use_cpu": not on_gpu, "bf16": on_gpu and torch.cuda.is_bf16_supported(),
            "report_to": [], "disable_tqdm": True, "logging_steps": 1, "remove_unused_columns": False,
            "dataloader_num_workers": 0}


def training_arguments(h: Any, output_dir: Path, total: int, seed: int, on_gpu: bool, save: bool = True) -> Any:
    """transformers ``TrainingArguments`` from our ``training:`` block for a run of ``total`` optimiser steps.

    One function for every supervised step (the SFT methods and SEE's per-round MJD step), so a setting
    in ``training:`` (accumulation, warm-up, weight decay, sampling, checkpointing) means the same everywhere.
    ``save=False`` for steps whose state our own round checkpoints keep.
    """
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(output_dir), per_device_train_batch_size=h.batch_size,
        gradient_accumulation_steps=h.grad_accum, learning_rate=h.learning_rate, num_train_epochs=h.epochs,
        max_steps=total, warmup_steps=int(h.warmup_ratio * total), weight_decay=h.weight_decay,
        save_strategy="steps" if save else "no", save_steps=h.save_steps, save_total_limit=2,
        train_sampling_strategy=h.sampling, lr_scheduler_type="linear",
        **checkpointing_arguments(TrainingArguments, h.gradient_checkpointing), **run_arguments(seed, on_gpu))


def checkpointing_arguments(args_cls: type, on: bool) -> dict[str, Any]:
    """Activation checkpointing under the name the installed transformers takes: 5.x renamed
    ``gradient_checkpointing`` to ``activation_checkpointing`` and warns on the old name on every run."""
    import dataclasses

    name = ("activation_checkpointing" if "activation_checkpointing" in {f.name for f in dataclasses.fields(args_cls)}
            else "gradient_checkpointing")
    return {name: on, f"{name}_kwargs": {"use_reentrant": False} if on else None}


def steps_for(n_rows: int, h: Any, epochs: float) -> int:
    """Optimiser steps for ``epochs`` passes over ``n_rows`` examples at the configured batch and accumulation."""
    return max(1, math.ceil(math.ceil(n_rows / (h.batch_size * h.grad_accum)) * epochs))


def train_sft(be: Any, rows: list[dict[str, list[int]]], cfg: Any, out: Path, resume: bool,
              progress: Any = None, full: bool = False) -> dict[str, Any]:
    """Train a LoRA adapter (or all weights) on ``rows``; save it under ``out/adapter``.

    Returns the training log: loss per step, seconds per step, peak memory, steps done.
    """
    import torch
    from transformers import DataCollatorForSeq2Seq, TrainerCallback, set_seed

    h = cfg.training
    set_seed(cfg.seed)
    model = be.model
    model.train()
    if not full:
        from peft import LoraConfig, get_peft_model

        lc = LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                        target_modules=cfg.lora.target_modules, task_type="CAUSAL_LM")
        model = get_peft_model(model, lc)
        if h.gradient_checkpointing:
            model.enable_input_require_grads()  # frozen embeddings: checkpointed blocks still need a grad path
    from datasets import Dataset

    ds = Dataset.from_list(rows)
    be.tok.padding_side = "right"
    on_gpu = be.device == "cuda"
    total = h.max_steps or steps_for(len(rows), h, h.epochs)
    args = training_arguments(h, out / "checkpoints", total, cfg.seed, on_gpu)
    log: list[dict[str, Any]] = []
    t_steps: list[float] = []

    class Progress(TrainerCallback):
        def __init__(self) -> None:
            self.t = time.perf_counter()
            self.task = progress.add_task("training", total=total) if progress is not None else None

        def on_train_begin(self, args, state, control, **kw):  # noqa: ANN001
            if self.task is not None:
                progress.update(self.task, completed=state.global_step)

        def on_step_end(self, args, state, control, **kw):  # noqa: ANN001
            now = time.perf_counter()
            t_steps.append(now - self.t)
            self.t = now
            if self.task is not None:
                progress.update(self.task, completed=state.global_step)

        def on_log(self, args, state, control, logs=None, **kw):  # noqa: ANN001
            if logs and "loss" in logs:
                log.append({"step": state.global_step, "loss": float(logs["loss"]),
                            "learning_rate": float(logs.get("learning_rate", 0.0)),
                            "grad_norm": float(logs.get("grad_norm", float("nan")))})

    collator = DataCollatorForSeq2Seq(be.tok, label_pad_token_id=IGNORE, padding=True)
    if rows and "soft_q" in rows[0]:
        from judgegap.training.soft import soft_collator

        collator = soft_collator(collator)
    trainer = target_only_trainer(model, args, ds, collator, [Progress()])
    # --resume with no complete checkpoint yet (killed before the first save finished) starts at step 0:
    # nothing had finished, so nothing is repeated
    ckpt = last_checkpoint(out / "checkpoints") if resume else None
    t0 = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=ckpt)
    elapsed = time.perf_counter() - t0
    target = out / "adapter"
    tmp = out / "adapter.tmp"
    model.save_pretrained(str(tmp))
    if full:
        be.tok.save_pretrained(str(tmp))
    if target.exists():
        import shutil

        shutil.rmtree(target)
    tmp.rename(target)
    model.eval()
    be.tok.padding_side = "left"
    steps_run = len(t_steps)
    return {
        "steps": int(result.global_step), "steps_this_process": steps_run, "resumed_from": ckpt,
        "train_seconds": round(elapsed, 2),
        "seconds_per_step": round(sum(t_steps[1:]) / max(1, steps_run - 1), 3) if steps_run > 1 else None,
        "examples": len(rows), "tokens": int(sum(len(r["input_ids"]) for r in rows)),
        "target_tokens": int(sum(sum(1 for x in r["labels"] if x != IGNORE) or len(r.get("soft_pos", ()))
                                 for r in rows)),
        "loss": log, "final_loss": float(result.training_loss),
        "peak_rss_gib": round(peak_rss_gib(), 3),
        "peak_gpu_gib": round(torch.cuda.max_memory_allocated() / 2**30, 3) if on_gpu else None,
        "trainable_parameters": int(sum(p.numel() for p in model.parameters() if p.requires_grad)),
    }


def write_json(path: Path, obj: Any) -> None:
    """Standard JSON (undefined numbers as null, like summary.json), written atomically."""
    from judgegap.store import jsonout

    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(jsonout.dumps(obj, indent=1, sort_keys=True))
    tmp.replace(path)
