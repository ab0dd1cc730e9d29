"""``judgegap train``: sample training items, build examples, train, then evaluate base vs tuned
on held-out items of every evaluation dataset and write the transfer matrix.

Output directory::

    OUT/split.json            training item ids and passage hashes per dataset
    OUT/checkpoints/          Trainer checkpoints (``--resume`` continues from the last)
    OUT/adapter/              the PEFT adapter + judgegap_adapter.json (base, method, seed, training ids)
    OUT/eval/                 an ordinary ``judgegap run`` of base and tuned (report.html, summary.json)
    OUT/train_summary.json    config, example counts, loss curve, s/step, peak memory, transfer matrix
    OUT/report.html           the loss curve, the transfer matrix and its reading against seed 000
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from judgegap.data import DATASETS, stratified_sample
from judgegap.experiments.runner import filtered_pool
from judgegap.errors import ConfigError, Interrupted, JudgegapError
from judgegap.report.training_view import build_training_report
from judgegap.store.rundir import RunLock
from judgegap.training.adapters import META_FILE, dependency_deprecations_quiet, passage_hash
from judgegap.training.config import TrainConfig
from judgegap.training.methods import METHODS, TrainContext, describe
from judgegap.training.sft import encode_all, train_sft, write_json

OUR_FILES = ("split.json", "checkpoints", "rounds", "adapter", "adapter.tmp", "eval", "train_summary.json", "report.html")


def training_items(cfg: TrainConfig) -> tuple[dict[str, list[Any]], dict[str, list[Any]], dict[str, str]]:
    """Training items per dataset (exactly n, or an error), their pools and metrics."""
    items, pools, metrics = {}, {}, {}
    for i, ds in enumerate(cfg.train):
        spec = DATASETS.get(ds.name)
        pool = filtered_pool(ds, cfg.dataset_data_dir(ds))
        if ds.n is not None and ds.n > len(pool):
            raise JudgegapError(f"train[{i}] ({ds.name}): n={ds.n} training items requested, only {len(pool)}"
                                " available after filters")
        if len(pool) < 2:
            raise JudgegapError(f"train[{i}] ({ds.name}): too few training items ({len(pool)})")
        items[ds.name] = stratified_sample(pool, ds.n, ds.seed, key=(lambda it: it.stratum) if ds.stratify else None)
        pools[ds.name] = pool
        metrics[ds.name] = spec.metric
    return items, pools, metrics


def split_record(items: dict[str, list[Any]]) -> dict[str, Any]:
    return {ds: {"ids": [it.id for it in its], "passages": sorted({passage_hash(it.context) for it in its})}
            for ds, its in items.items()}


def trained_sets(split: dict[str, Any]) -> tuple[set[str], set[str]]:
    """(item ids, passage hashes) trained on, over every training dataset: what the adapter's metadata
    records and what the evaluation (and ``--dry-run``'s held-out count) excludes."""
    return ({i for s in split.values() for i in s["ids"]}, {h for s in split.values() for h in s["passages"]})


def eval_config(cfg: TrainConfig, out: Path, adapter: Path | None) -> dict[str, Any]:
    """An ordinary run config: base and tuned on the held-out evaluation items (``adapter`` None:
    the tuned entry is the base itself, to validate the config before anything is trained)."""
    base = json.loads(cfg.model.model_dump_json(exclude_none=True))
    base["name"] = "base"
    if cfg.evaluate.backend == "llamacpp":  # the same GGUF and generation settings, llama.cpp's own defaults
        keep = ("model", "gguf_file", "chat_template", "generation", "n_ctx", "n_threads")
        base = {"name": "base", "backend": "llamacpp", **{k: base[k] for k in keep if k in base}}
    base.update(cfg.evaluate.model_options)
    tuned = ({**base, "name": "tuned"} if adapter is None else
             {**base, "name": "tuned", "model": str(adapter), "gguf_file": None} if cfg.full_finetune
             else {**base, "name": "tuned", "adapter": str(adapter)})  # full fine-tuning writes a whole model
    return {"name": f"{cfg.name}-eval", "output_dir": str(out / "eval"), "seed": cfg.seed,
            "data_dir": str(cfg.data_dir) if cfg.data_dir else None,
            "call_cache": str(cfg.call_cache) if cfg.call_cache else None,
            "bootstrap_resamples": cfg.evaluate.bootstrap_resamples,
            "datasets": [json.loads(d.model_dump_json(exclude_none=True)) | {"exclude_trained": True} for d in cfg.eval],
            "models": [base, tuned], "experiments": cfg.evaluate.experiments}


def _check_llamacpp_eval(cfg: TrainConfig) -> None:
    """Before training: the base is a GGUF file of an architecture whose adapters llama.cpp can apply."""
    from judgegap.backends.llamacpp import gguf_source
    from judgegap.training.gguf_adapter import check_architecture

    try:
        path, _ = gguf_source(cfg.model.model, cfg.model.gguf_file, "evaluate.backend: llamacpp",
                              "evaluate.backend: training")
        check_architecture(path, "evaluate.backend: llamacpp")
    except JudgegapError as exc:
        raise ConfigError(str(exc)) from None


def check_output(out: Path, resume: bool, overwrite: bool, split: dict[str, Any]) -> str:
    """Whether a training may write to ``out``, touching nothing: 'new', 'resume' or 'overwrite'.
    Shared by the training and ``--dry-run``, so a dry run refuses exactly what the training would."""
    existing = [n for n in OUR_FILES if (out / n).exists()]
    if existing and not (resume or overwrite):
        raise JudgegapError(f"{out} already holds a training run ({', '.join(existing)}); use --resume to continue"
                            " it, --overwrite to replace it, or another -o DIR")
    if resume:
        if not (out / "split.json").exists():
            raise JudgegapError(f"--resume: no training run in {out} to continue")
        if json.loads((out / "split.json").read_text()) != split:
            raise JudgegapError(f"--resume: the training items differ from the run in {out} (config changed?);"
                                " use --overwrite or another -o DIR")
        return "resume"
    return "overwrite" if existing else "new"


def _prepare(out: Path, resume: bool, overwrite: bool, split: dict[str, Any]) -> None:
    if check_output(out, resume, overwrite, split) == "overwrite":
        for n in OUR_FILES:
            p = out / n
            if p.exists():
                shutil.rmtree(p) if p.is_dir() else p.unlink()


def check_training(cfg: TrainConfig, evaluate: bool = True) -> tuple[TrainConfig, dict[str, list[Any]],
                                                                     dict[str, list[Any]], dict[str, str], Any, Any]:
    """Every check ``judgegap train`` makes before it writes anything — training items, the evaluation
    config, the model files, the method's params against the backend — shared with ``--dry-run``.
    Returns (config with the device applied, items, pools, metrics, method, params)."""
    from judgegap.experiments.runner import check_model

    if cfg.device != "auto":
        cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"device": cfg.device})})
    items, pools, metrics = training_items(cfg)  # all input checked before anything is written
    if evaluate and cfg.evaluate.enabled and cfg.eval:  # the evaluation config too, before any training
        from judgegap.config import parse_config

        parse_config(eval_config(cfg, Path(cfg.output_dir), None), "train config (evaluation)")
        if cfg.evaluate.backend == "llamacpp":
            _check_llamacpp_eval(cfg)
    check_model(cfg.model, "model")
    method = METHODS.get(cfg.method.name)()
    params = method.parse_params(cfg.method.params)
    method.check(params, cfg)
    return cfg, items, pools, metrics, method, params


def plan_training(cfg: TrainConfig, resume: bool = False, overwrite: bool = False,
                  evaluate: bool = True) -> dict[str, Any]:
    """What ``judgegap train`` would do, after every check it makes first, with no model loaded and
    nothing written: training items per dataset, the held-out evaluation items (the training items
    and their passages excluded, as the evaluation will exclude them), the schedule, the output dir."""
    from judgegap.config import parse_config
    from judgegap.experiments.runner import load_items
    from judgegap.store.rundir import refuse_if_locked

    cfg, items, _, _, _, params = check_training(cfg, evaluate)
    out = Path(cfg.output_dir)
    refuse_if_locked(out)
    split = split_record(items)
    mode = check_output(out, resume, overwrite, split)
    held_out: dict[str, dict[str, Any]] = {}
    if evaluate and cfg.evaluate.enabled and cfg.eval:
        run_cfg = parse_config(eval_config(cfg, out, None), "train config (evaluation)")
        trained = {"this training": trained_sets(split)}
        for ds in run_cfg.datasets:
            held_out[ds.name] = {"requested": ds.n, "n": len(load_items(run_cfg, ds, trained)[0])}
    h = cfg.training
    return {"output_dir": str(out), "mode": mode, "model": cfg.model.model, "method": cfg.method.name,
            "params": params.model_dump(mode="json"), "lora": None if cfg.full_finetune else cfg.lora.model_dump(),
            "train": {d: {"items": len(v), "passages": len(split[d]["passages"])} for d, v in items.items()},
            "held_out": held_out, "evaluate_backend": cfg.evaluate.backend if held_out else None,
            "schedule": {"max_steps": h.max_steps, "epochs": h.epochs, "batch_size": h.batch_size,
                         "grad_accum": h.grad_accum, "learning_rate": h.learning_rate, "seed": cfg.seed}}


def run_training(cfg: TrainConfig, resume: bool = False, overwrite: bool = False, evaluate: bool = True,
                 console: Console | None = None) -> dict[str, Any]:
    from judgegap.backends import CachedBackend, make_backend
    from judgegap.experiments.progress import make_progress
    from judgegap.experiments.runner import environment
    from judgegap.store.calls import CallCache

    console = console or Console(stderr=True)
    cfg, items, pools, metrics, method, params = check_training(cfg, evaluate)
    out = Path(cfg.output_dir)
    with RunLock(out, "train"):
        split = split_record(items)
        _prepare(out, resume, overwrite, split)
        write_json(out / "split.json", split)
        console.print(f"[dim]loading base model {escape(cfg.model.model)} (hf)...[/dim]")
        calls = CallCache(cfg.call_cache)
        t0 = time.perf_counter()
        raw = make_backend(cfg.model)
        be = CachedBackend(raw, calls, label=cfg.model.name)
        console.print(f"[dim]loaded in {time.perf_counter() - t0:.1f}s[/dim]")
        with make_progress(console) as progress, dependency_deprecations_quiet():
            be.progress = None
            ctx = TrainContext(items=items, pools=pools, metrics=metrics, backend=be, model_cfg=cfg.model,
                               seed=cfg.seed, progress=progress)
            t_ex = time.perf_counter()
            examples = method.build_examples(ctx, params)
            ex_seconds = time.perf_counter() - t_ex
            too_long = 0
            if getattr(method, "online", False):  # makes its own samples round by round
                if cfg.full_finetune:
                    raise JudgegapError(f"method {cfg.method.name!r} trains a LoRA adapter; full_finetune is not supported")
                log = method.train_online(raw, ctx, cfg, params, out, resume, progress)
            else:
                rows, too_long = encode_all(raw.encoder, examples, cfg.training.max_length)
                if not rows:
                    raise JudgegapError(f"no training example fits max_length {cfg.training.max_length}"
                                        f" ({too_long} too long)")
                console.print(f"{len(rows)} training examples ({too_long} longer than {cfg.training.max_length}"
                              f" tokens skipped): {describe(examples)['by_source']}")
                log = train_sft(raw, rows, cfg, out, resume, progress=progress, full=cfg.full_finetune)
        calls.close()
        trained_ids, trained_passages = trained_sets(split)
        meta = {"base_model": cfg.model.model, "base_weights": raw.source_fp, "method": cfg.method.name,
                "params": params.model_dump(mode="json"), "seed": cfg.seed,
                "lora": None if cfg.full_finetune else cfg.lora.model_dump(),
                "train_ids": sorted(trained_ids), "train_passages": sorted(trained_passages),
                "examples": describe(examples), "skipped_too_long": too_long,
                "judgegap": environment()}
        write_json(out / "adapter" / META_FILE, meta)
        raw.close()
        del raw, be
        summary: dict[str, Any] = {"config": json.loads(cfg.model_dump_json()), "training": log,
                                   "examples": describe(examples), "skipped_too_long": too_long,
                                   "example_seconds": round(ex_seconds, 2), "split": {
                                       d: {"n_items": len(s["ids"]), "n_passages": len(s["passages"])}
                                       for d, s in split.items()}}
        write_json(out / "train_summary.json", summary)
        build_training_report(summary, out / "report.html")
    if evaluate and cfg.evaluate.enabled and cfg.eval:
        def save(evaluation: dict[str, Any]) -> None:
            summary["evaluation"] = evaluation
            with RunLock(out, "train"):
                write_json(out / "train_summary.json", summary)
                build_training_report(summary, out / "report.html")

        try:
            save(evaluate_adapter(cfg, out, console))
        except Interrupted:
            partial = transfer_from_store(cfg, out, complete_only=True)
            if partial["transfer"] or partial.get("selfscore_transfer"):  # keep the datasets that finished
                save(partial | {"status": "interrupted", "note": "evaluation stopped: the matrix covers only the"
                                " datasets both models finished; --resume completes it"})
            raise
    return summary


def evaluate_adapter(cfg: TrainConfig, out: Path, console: Console) -> dict[str, Any]:
    """Base vs tuned on held-out items (an ordinary run in OUT/eval), then the transfer matrix."""
    from judgegap.config import parse_config
    from judgegap.experiments.runner import run_config
    from judgegap.store import Store

    run_cfg = parse_config(eval_config(cfg, out, out / "adapter"), "train config (evaluation)")
    eval_dir = out / "eval"
    resume = (eval_dir / Store.FILENAME).exists()
    run_config(run_cfg, resume=resume, overwrite=False, console=console)
    return transfer_from_store(cfg, out) | {"status": "completed"}


def _finished(recs: list[dict[str, Any]], who: str) -> set[str]:
    """Datasets where base and tuned have the same (non-zero) number of records."""
    out = set()
    for ds in {r["dataset"] for r in recs}:
        n = [sum(1 for r in recs if r["dataset"] == ds and r[who] == m) for m in ("base", "tuned")]
        if n[0] == n[1] > 0:
            out.add(ds)
    return out


def transfer_from_store(cfg: TrainConfig, out: Path, complete_only: bool = False) -> dict[str, Any]:
    """The transfer matrix (and self-score transfer) from OUT/eval's store; ``complete_only``: only the
    datasets both models finished (an evaluation that was stopped part-way)."""
    from judgegap.store import Store
    from judgegap.training.transfer import reading, selfscore_transfer, transfer_matrix

    eval_dir = out / "eval"
    st = Store.in_dir(eval_dir)
    try:
        gens, judgs = st.records("asymmetry", "generation"), st.records("asymmetry", "judgment")
        scored = st.records("selfscore", "scored_answer")
    finally:
        st.close()
    if complete_only:
        keep = _finished(gens, "model") & _finished(judgs, "judge")
        gens, judgs = [r for r in gens if r["dataset"] in keep], [r for r in judgs if r["dataset"] in keep]
        keep_s = _finished(scored, "model")
        scored = [r for r in scored if r["dataset"] in keep_s]
    matrix = transfer_matrix(gens, judgs, "base", "tuned", cfg.evaluate.bootstrap_resamples, cfg.seed)
    res = {"transfer": matrix, "reading": reading(matrix, cfg.method.name), "run_dir": str(eval_dir)}
    if scored:
        res["selfscore_transfer"] = selfscore_transfer(scored, "base", "tuned", cfg.evaluate.bootstrap_resamples,
                                                       cfg.seed)
    return res
