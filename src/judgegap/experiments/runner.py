"""config -> datasets -> backends -> experiments -> store -> report, in one direction."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import time
from importlib import metadata as md
from pathlib import Path
from typing import Any

from rich.console import Console

from judgegap import __version__
from judgegap.backends import CachedBackend, make_backend
from judgegap.config import DatasetConfig, RunConfig
from judgegap.data import DATASETS, QAItem, stratified_sample
from judgegap.errors import JudgegapError
from judgegap.experiments.base import EXPERIMENTS, RunContext
from judgegap.experiments.progress import make_progress
from judgegap.store import Store, jsonout

RESULT_FILES = ("results.jsonl", "summary.json", "report.html")


def environment() -> dict[str, Any]:
    """Versions and commit recorded with every run so it can be re-run."""
    versions = {}
    for pkg in ("torch", "transformers", "numpy", "scipy", "scikit-learn", "pydantic", "httpx"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    commit = None
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                                cwd=Path(__file__).parent).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        pass
    return {"judgegap": __version__, "python": platform.python_version(), "platform": platform.platform(),
            "packages": versions, "git_commit": commit}


def load_items(cfg: RunConfig, ds: DatasetConfig) -> tuple[list[Any], list[Any]]:
    """(sampled items, full filtered pool) for one configured dataset."""
    spec = DATASETS.get(ds.name)
    pool = spec.load(data_dir=cfg.dataset_data_dir(ds), data_file=ds.data_file)
    if spec.kind != "qa" and (ds.answerable is not None or ds.question_types):
        raise JudgegapError(f"dataset {ds.name}: answerable / question_types apply to QA datasets only")
    if ds.answerable is not None:
        pool = [it for it in pool if it.answerable == ds.answerable]
    if ds.question_types:
        pool = [it for it in pool if str(it.metadata.get("question_type", "")) in set(ds.question_types)]
    if not pool:
        raise JudgegapError(f"dataset {ds.name}: no items left after filters")
    items = stratified_sample(pool, ds.n, ds.seed, key=(lambda it: it.stratum) if ds.stratify else None)
    return items, pool


def prepare_output_dir(out: Path, resume: bool, overwrite: bool) -> None:
    store_file = out / Store.FILENAME
    if store_file.exists() and not (resume or overwrite):
        raise JudgegapError(f"{out} already holds a run: use --resume to continue it or --overwrite to start over")
    if overwrite and out.exists():
        for name in (Store.FILENAME, Store.FILENAME + "-wal", Store.FILENAME + "-shm", *RESULT_FILES):
            (out / name).unlink(missing_ok=True)
        shutil.rmtree(out / "figures", ignore_errors=True)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise JudgegapError(f"output dir is not writable: {out} ({exc.strerror or exc})") from None


def run_config(cfg: RunConfig, resume: bool = False, overwrite: bool = False,
               console: Console | None = None) -> dict[str, Any]:
    console = console or Console(stderr=True)
    datasets: dict[str, list[QAItem]] = {}
    pools: dict[str, list[QAItem]] = {}
    metrics: dict[str, str] = {}
    for ds in cfg.datasets:  # validate all input before writing anything
        datasets[ds.name], pools[ds.name] = load_items(cfg, ds)
        metrics[ds.name] = DATASETS.get(ds.name).metric
    out = Path(cfg.output_dir)
    prepare_output_dir(out, resume, overwrite)
    store = Store.in_dir(out)
    config_dict = json.loads(cfg.model_dump_json())
    store.start_run(cfg.name, config_dict, environment(), cfg.seed)
    backends: dict[str, CachedBackend] = {}
    model_cfgs = {m.name: m for m in cfg.models}

    def factory(name: str) -> CachedBackend:
        if name not in backends:
            mc = model_cfgs[name]
            console.print(f"[dim]loading model {name} ({mc.backend}: {mc.model})...[/dim]")
            t0 = time.perf_counter()
            backends[name] = CachedBackend(make_backend(mc), store, label=name)
            console.print(f"[dim]loaded {name} in {time.perf_counter() - t0:.1f}s[/dim]")
        return backends[name]

    t_start = time.perf_counter()
    status = "failed"
    try:
        with make_progress(console) as progress:
            ctx = RunContext(config=cfg, store=store, datasets=datasets, dataset_metrics=metrics, pools=pools,
                             backend_factory=factory, console=console, progress=progress)
            for exp in cfg.experiments:
                EXPERIMENTS.get(exp.name)().run(ctx, exp.params)
        status = "completed"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        run_stats = {
            "elapsed_s": round(time.perf_counter() - t_start, 2),
            "cache_hits": store.hits, "cache_misses": store.misses,
            "backends": {n: b.backend.stats() for n, b in backends.items()},
            "items": {k: len(v) for k, v in datasets.items()},
        }
        if status != "completed":
            store.finish_run(status, {"run": run_stats})
        for b in backends.values():
            b.backend.close()
    summary = summarize_store(store)
    summary["run"] = run_stats
    write_outputs(store, out, summary)
    store.finish_run("completed", summary)
    store.close()
    return summary


def summarize_store(store: Store) -> dict[str, Any]:
    """Recompute every experiment's summary from stored records (no model calls)."""
    run = store.last_run()
    if run is None:
        raise JudgegapError(f"{store.path}: the store holds no run")
    config = run["config"]
    summary: dict[str, Any] = {"name": config.get("name"), "config": config, "env": run["env"], "experiments": {}}
    for exp in config.get("experiments", []):
        summary["experiments"][exp["name"]] = EXPERIMENTS.get(exp["name"])().summarize(store, config, exp["params"])
    return summary


def write_outputs(store: Store, out: Path, summary: dict[str, Any]) -> None:
    from judgegap.report import build_report

    store.export_jsonl("records", out / "results.jsonl")
    tmp = out / "summary.json.tmp"
    tmp.write_text(jsonout.dumps(summary, indent=2))
    tmp.replace(out / "summary.json")
    build_report(store, summary, out / "report.html")
