"""config -> datasets -> backends -> experiments -> store -> report, in one direction."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import time
from importlib import metadata as md
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from judgegap import __version__
from judgegap.backends import CachedBackend, make_backend
from judgegap.config import DatasetConfig, RunConfig
from judgegap.data import DATASETS, stratified_sample
from judgegap.errors import Interrupted, JudgegapError, first_error
from judgegap.experiments.base import EXPERIMENTS, RunContext, item_major_prepass
from judgegap.experiments.progress import make_progress
from judgegap.experiments.summaries import SUMMARY_SCHEMA_VERSION, RunSummary
from judgegap.store import Store, jsonout
from judgegap.store.calls import CallCache
from judgegap.store.rundir import (LOCK_NAME, RunLock, config_diff, config_hash, foreign_result_files, is_locked,
                                   record_written, refuse_if_locked, remove_written)


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


def load_items(cfg: RunConfig, ds: DatasetConfig, trained: dict[str, Any] | None = None) -> tuple[list[Any], list[Any]]:
    """(sampled items, full filtered pool) for one configured dataset."""
    spec = DATASETS.get(ds.name)
    pool = filtered_pool(ds, cfg.dataset_data_dir(ds))
    if not pool:
        raise JudgegapError(f"dataset {ds.name}: no items left after filters")
    eligible = restrict_to_answers(cfg, ds.name, pool)
    trained = trained_on(cfg) if trained is None else trained
    if trained and spec.kind == "qa" and ds.exclude_trained:
        eligible = [it for it in eligible if not any(_trained_on_item(it, *t) for t in trained.values())]
        if not eligible:
            raise JudgegapError(f"dataset {ds.name}: every item was used to train an adapter of this config")
    items = stratified_sample(eligible, ds.n, ds.seed, key=(lambda it: it.stratum) if ds.stratify else None)
    if trained and spec.kind == "qa":
        check_held_out(ds.name, items, trained)
    return items, pool


def filtered_pool(ds: DatasetConfig, data_dir: Path | None) -> list[Any]:
    """Every item of a configured dataset that passes its answerable / question_types filters
    (before any sampling; run and training configs share it)."""
    spec = DATASETS.get(ds.name)
    pool = spec.load(data_dir=data_dir, data_file=ds.data_file)
    if spec.kind != "qa" and (ds.answerable is not None or ds.question_types):
        raise JudgegapError(f"dataset {ds.name}: answerable / question_types apply to QA datasets only")
    if ds.answerable is not None:
        pool = [it for it in pool if it.answerable == ds.answerable]
    if ds.question_types:
        pool = [it for it in pool if str(it.metadata.get("question_type", "")) in set(ds.question_types)]
    return pool


def trained_on(cfg: RunConfig) -> dict[str, Any]:
    """Ids and passage hashes of the items the config's adapters were trained on, by adapter."""
    from judgegap.training.adapters import read_meta

    out: dict[str, Any] = {}
    for m in cfg.models:
        where = Path(m.adapter) if m.adapter is not None else Path(m.model) if m.model else None
        if where is not None and where.is_dir():  # an adapter, or a fully fine-tuned model folder
            meta = read_meta(where)
            if meta.get("train_ids") or meta.get("train_passages"):
                out[f"{m.name} ({where})"] = (set(meta.get("train_ids", [])), set(meta.get("train_passages", [])))
    return out


def _trained_on_item(item: Any, ids: set[str], passages: set[str]) -> bool:
    """Was ``item`` (by id) or its passage (by hash) in an adapter's training set?"""
    from judgegap.training.adapters import passage_hash

    return item.id in ids or passage_hash(item.context) in passages


def check_held_out(dataset: str, items: list[Any], trained: dict[str, Any]) -> None:
    """No evaluation item may have been trained on (by id or by passage): an error, never a warning."""
    for who, (ids, passages) in trained.items():
        bad = [it for it in items if _trained_on_item(it, ids, passages)]
        if bad:
            raise JudgegapError(f"dataset {dataset}: {len(bad)} of {len(items)} items (e.g. {bad[0].id!r}) were used"
                                f" to train the adapter of {who}; evaluation items must be held out (set"
                                " exclude_trained: true to drop them)")


def restrict_to_answers(cfg: RunConfig, dataset: str, pool: list[Any]) -> list[Any]:
    """Only items every answers file covers can be judged: sample among those (a file made with
    lm-eval's --limit covers a subset). A file sharing no id with the dataset is an error."""
    eligible = pool
    for i, m in enumerate(cfg.models):
        aset = m.answer_set(dataset)
        if aset is None:
            continue
        covered = [it for it in eligible if it.id in aset.answers]
        if not covered:
            sample = ", ".join(repr(k) for k in list(aset.answers)[:2])
            ours = ", ".join(repr(it.id) for it in pool[:2])
            raise JudgegapError(f"models[{i}] ({m.name}).answers: {aset.path} shares no id with dataset {dataset}"
                                f" (file ids look like {sample}; the dataset's like {ours}); give answers as"
                                " {dataset: file} when datasets differ")
        eligible = covered
    return eligible


def dataset_counts(cfg: RunConfig, datasets: dict[str, list[Any]]) -> dict[str, dict[str, Any]]:
    """Requested vs actual items per dataset (a filter or a small file can leave fewer than n)."""
    return {ds.name: {"requested": ds.n, "n": len(datasets[ds.name])} for ds in cfg.datasets}


def prepare_output_dir(out: Path, resume: bool, overwrite: bool, config: dict[str, Any]) -> None:
    """Decide, under the directory's lock, whether this run may write to ``out``.

    Refuses (one line, nothing touched): see :func:`check_output_dir`. Then clears an earlier run
    for --overwrite and proves the directory writable."""
    check_output_dir(out, resume, overwrite, config)
    if overwrite and (out / Store.FILENAME).exists():
        remove_written(out, Store.FILENAME)
    try:
        probe = out / f".write-test-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise JudgegapError(f"output dir is not writable: {out} ({exc.strerror or exc})") from None


def check_output_dir(out: Path, resume: bool, overwrite: bool, config: dict[str, Any]) -> str:
    """Whether a run may write to ``out``, touching nothing: 'new', 'resume' or 'overwrite'.

    Refuses (one line): a directory holding a run without --resume or --overwrite; --resume with
    no run to resume, or with a config whose result-changing fields differ (they are named);
    result files judgegap did not write. The real run and ``--dry-run`` share it, so a dry run
    refuses exactly what the run would."""
    if resume and overwrite:
        raise JudgegapError("--resume and --overwrite contradict each other: pick one")
    store_file = out / Store.FILENAME
    if store_file.exists() and not (resume or overwrite):
        raise JudgegapError(f"{out} already holds a run: use --resume to continue it, --overwrite to start over,"
                            " or -o DIR for a new run")
    if resume:
        if not store_file.exists():
            raise JudgegapError(f"--resume: {out} holds no judgegap run to resume; run without --resume to start"
                                " one")
        prior = Store(store_file)
        try:
            last = prior.last_run()
        finally:
            prior.close()
        if last is None:
            raise JudgegapError(f"--resume: {store_file} holds no run to resume; use --overwrite to start over")
        changed = config_diff(normalised_config(last["config"]), config)
        if changed:
            shown = "; ".join(changed[:6]) + (f"; and {len(changed) - 6} more" if len(changed) > 6 else "")
            raise JudgegapError(f"--resume: the config changed since the run in {out} started ({shown}); use"
                                " --overwrite to discard that run or -o DIR for a new one")
    foreign = foreign_result_files(out)
    if foreign and not store_file.exists():
        raise JudgegapError(f"{out} holds files judgegap did not write ({', '.join(foreign)}) that a run would"
                            " replace; choose another -o DIR")
    return "resume" if resume else "overwrite" if overwrite and store_file.exists() else "new"


def plan_run(cfg: RunConfig, resume: bool = False, overwrite: bool = False) -> dict[str, Any]:
    """What ``judgegap run`` would do, checked as the run checks it (config, data files, filters,
    model files, adapters, output directory), with no model loaded and nothing written.

    Why: a long run's mistakes should cost seconds; the run itself validates the same things first,
    but starts at once when they pass."""
    datasets, _, _ = load_all(cfg)
    check_models(cfg)
    out = Path(cfg.output_dir)
    refuse_if_locked(out)
    mode = check_output_dir(out, resume, overwrite, json.loads(cfg.model_dump_json()))
    existing = next((p for p in (out, *out.resolve().parents) if p.exists()), None)
    if existing is not None and not os.access(existing, os.W_OK):
        raise JudgegapError(f"output dir is not writable: {out} ({existing} is read-only)")
    experiments = []
    for exp in cfg.experiments:
        cls = EXPERIMENTS.get(exp.name)
        experiments.append({"name": exp.name, "needs": list(cls.needs(cls.Params.model_validate(exp.params)))})
    return {"output_dir": str(out), "mode": mode, "datasets": dataset_counts(cfg, datasets),
            "models": [{"name": m.name, "backend": m.backend, "model": m.model,
                        "adapter": str(m.adapter) if m.adapter is not None else None} for m in cfg.models],
            "experiments": experiments}


def normalised_config(old: dict[str, Any]) -> dict[str, Any]:
    """A stored config re-read by this version (defaults of fields added since filled in), so
    upgrading judgegap does not make an unchanged config look changed; as stored if it no
    longer validates (then every real difference is shown)."""
    from judgegap.config import parse_config

    try:
        return json.loads(parse_config(dict(old), "stored config").model_dump_json())
    except JudgegapError:
        return old


def load_all(cfg: RunConfig) -> tuple[dict[str, list[Any]], dict[str, list[Any]], dict[str, str]]:
    """Every configured dataset, loaded and validated before anything is written."""
    datasets: dict[str, list[Any]] = {}
    pools: dict[str, list[Any]] = {}
    metrics: dict[str, str] = {}
    trained = trained_on(cfg)
    for ds in cfg.datasets:
        datasets[ds.name], pools[ds.name] = load_items(cfg, ds, trained)
        metrics[ds.name] = DATASETS.get(ds.name).metric
    return datasets, pools, metrics


def run_config(cfg: RunConfig, resume: bool = False, overwrite: bool = False,
               console: Console | None = None, backends: Any = None) -> dict[str, Any]:
    """Run every configured experiment; ``backends`` maps model names to backend objects that
    replace the configured ones (the Python API's way to plug in a model)."""
    console = console or Console(stderr=True)
    overrides = dict(backends or {})
    datasets, pools, metrics = load_all(cfg)  # validate all input before writing anything
    check_models(cfg, skip=set(overrides))
    check_overrides(cfg, overrides)
    for name, c in dataset_counts(cfg, datasets).items():
        if c["requested"] is not None and c["n"] < c["requested"]:
            console.print(f"[yellow]{escape(name)}: n={c['requested']} requested, {c['n']} available after filters;"
                          f" running {c['n']}[/yellow]")
    out = Path(cfg.output_dir)
    config_dict = json.loads(cfg.model_dump_json())
    dir_existed = out.exists()
    rolled_back = False
    try:
        with RunLock(out, "run"):
            prepare_output_dir(out, resume, overwrite, config_dict)
            fresh = not (out / Store.FILENAME).exists()  # after --overwrite too: nothing of an earlier run is left
            try:
                return _run_locked(cfg, out, config_dict, datasets, pools, metrics, console, overrides, resume)
            except Interrupted:
                raise  # the user stopped it: --resume continues from the store
            except JudgegapError:
                rolled_back = fresh and _nothing_recorded(out)
                if rolled_back:  # e.g. the first model failed to load: leave no run that blocks the corrected config
                    remove_written(out, Store.FILENAME)
                raise
    finally:
        if rolled_back:
            (out / LOCK_NAME).unlink(missing_ok=True)
            if not dir_existed:
                with contextlib.suppress(OSError):
                    out.rmdir()  # only if empty


def _nothing_recorded(out: Path) -> bool:
    """True when the run in ``out`` stored no record (its model calls, if any, are in the call cache)."""
    store = Store.in_dir(out)
    try:
        return store.count_records() == 0
    finally:
        store.close()


def _run_locked(cfg: RunConfig, out: Path, config_dict: dict[str, Any], datasets: dict[str, list[Any]],
                pools: dict[str, list[Any]], metrics: dict[str, str], console: Console,
                overrides: dict[str, Any], resume: bool = False) -> dict[str, Any]:
    store = Store.in_dir(out)
    record_written(out, [out / Store.FILENAME])
    store.mark_stale_runs()
    last = store.last_run()
    # a resumed run keeps the scope of the run it continues (its config was checked to be the same)
    scope = last["config_hash"] if resume and last and last.get("config_hash") else config_hash(config_dict)
    store.start_run(cfg.name, config_dict, environment(), cfg.seed, scope)
    store.log_event("datasets", dataset_counts(cfg, datasets))
    files = {f"{m.name}/{ds}": aset.describe() for m in cfg.models for ds in datasets
             if (aset := m.answer_set(ds)) is not None}
    if files:
        store.log_event("answers_files", files)
    calls = CallCache(cfg.call_cache)
    backends: dict[str, CachedBackend] = {}
    model_cfgs = {m.name: m for m in cfg.models}

    def factory(name: str) -> CachedBackend:
        if name not in backends and name in overrides:
            backends[name] = CachedBackend(overrides[name], calls, label=name)
        if name not in backends:
            mc = model_cfgs[name]
            console.print(f"[dim]loading model {escape(name)} ({escape(mc.backend)}: {escape(mc.model)})...[/dim]")
            t0 = time.perf_counter()
            backends[name] = CachedBackend(make_backend(mc), calls, label=name)
            console.print(f"[dim]loaded {escape(name)} in {time.perf_counter() - t0:.1f}s[/dim]")
            note = getattr(backends[name].backend, "load_note", None)  # plugins need not subclass Backend
            if note:
                console.print(f"[yellow]{escape(note)}[/yellow]")
        return backends[name]

    t_start = time.perf_counter()
    status = "failed"
    try:
        with make_progress(console) as progress:
            ctx = RunContext(config=cfg, store=store, datasets=datasets, dataset_metrics=metrics, pools=pools,
                             backend_factory=factory, console=console, progress=progress)
            exps = [(EXPERIMENTS.get(exp.name)(), exp.params) for exp in cfg.experiments]
            item_major_prepass(ctx, exps)  # an item's calls of every experiment back to back (prefix caches)
            for (e, params) in exps:
                e.run(ctx, params)
        status = "completed"
    except (KeyboardInterrupt, Interrupted):
        status = "interrupted"
        raise
    finally:
        run_stats = {
            "elapsed_s": round(time.perf_counter() - t_start, 2),
            "cache_hits": calls.hits, "cache_misses": calls.misses, "call_cache": str(calls.path),
            "backends": {n: b.backend.stats() for n, b in backends.items()},
            "items": {k: len(v) for k, v in datasets.items()},
        }
        if status != "completed":
            store.finish_run(status, {"run": run_stats})
        for b in backends.values():
            b.backend.close()
        calls.close()
    store.finish_run("completed", None)
    summary = summarize_store(store)
    summary["run"] = run_stats
    write_outputs(store, out, summary)
    store.finish_run("completed", summary)
    store.close()
    return summary


def check_overrides(cfg: RunConfig, overrides: dict[str, Any]) -> None:
    """Backend objects passed from Python: known model names, and the capabilities they need."""
    from judgegap.backends.base import Backend
    from judgegap.experiments.base import CAPABILITY_WORDS

    names = {m.name for m in cfg.models}
    for name, be in overrides.items():
        if name not in names:
            raise JudgegapError(f"backends: {name!r} is not a configured model ({', '.join(sorted(names))})")
        if not isinstance(be, Backend):
            raise JudgegapError(f"backends[{name!r}]: expected a judgegap.Backend, got {type(be).__name__}")
        for exp in cfg.experiments:
            cls = EXPERIMENTS.get(exp.name)
            missing = [c for c in cls.needs(cls.Params.model_validate(exp.params))
                       if not getattr(be.capabilities, c)]
            if missing:
                raise JudgegapError(f"experiment {exp.name} needs {', '.join(CAPABILITY_WORDS.get(c, c) for c in missing)},"
                                    f" which the backend given for model {name} ({type(be).__name__}) cannot provide")


def check_models(cfg: RunConfig, skip: set[str] | None = None) -> None:
    """Resolve every built-in model name / local path before the store is created."""
    for i, m in enumerate(cfg.models):
        if m.name not in (skip or set()):
            check_model(m, f"models[{i}] ({m.name})")


def check_model(m: Any, where: str) -> None:
    """One model entry's weights (and adapter base) resolved, or one line naming ``where``."""
    from judgegap.backends.models import resolve_model_ref

    if m.backend in ("hf", "llamacpp"):
        try:
            source, fp = resolve_model_ref(m.model, m.gguf_file)
            if m.adapter is not None:
                from judgegap.training.adapters import check_base

                check_base(Path(m.adapter), fp, m.model)
                if m.backend == "llamacpp" and source.get("kind") == "gguf":
                    from judgegap.training.gguf_adapter import check_convertible

                    check_convertible(Path(m.adapter), Path(source["path"]))
        except JudgegapError as exc:
            raise JudgegapError(f"{where}: {exc}") from None


def run_status(store: Store, out: Path) -> dict[str, Any]:
    """Whether the stored run finished: completed, running (another process), interrupted or failed."""
    last = store.last_run()
    status = last["status"] if last else "none"
    if status == "running" and not is_locked(out):
        status = "interrupted"
    notes = {"completed": "the run completed",
             "running": "the run is still in progress: numbers cover the items finished so far",
             "interrupted": "the run was interrupted before it finished (killed or stopped): numbers cover only the"
                            " items finished before that; rerun with --resume to complete it",
             "failed": "the run failed before it finished: numbers cover only the items finished before the"
                       " error; fix the cause and rerun with --resume",
             "none": "no run"}
    return {"status": status, "complete": status == "completed", "note": notes.get(status, status)}


def summarize_store(store: Store) -> dict[str, Any]:
    """Recompute every experiment's summary from stored records (no model calls)."""
    run = store.last_run()
    if run is None:
        raise JudgegapError(f"{store.path}: the store holds no run")
    config = run["config"]
    summary: dict[str, Any] = {"schema_version": SUMMARY_SCHEMA_VERSION, "name": config.get("name"),
                               "run_status": run_status(store, store.path.parent), "config": config,
                               "env": run["env"], "experiments": {}}
    counts = [e for e in store.events("datasets") if e["run_id"] == run["run_id"]]
    if counts:
        summary["datasets"] = {k: v for k, v in counts[-1].items() if k not in ("run_id", "at", "kind")}
    for exp in config.get("experiments", []):
        cls = EXPERIMENTS.get(exp["name"])
        summ = cls().summarize(store, config, exp["params"])
        check_summary(exp["name"], getattr(cls, "Summary", None), summ)
        summary["experiments"][exp["name"]] = summ
    check_summary("run", RunSummary, summary)
    return summary


def check_summary(name: str, model: Any, summ: dict[str, Any]) -> None:
    """An experiment's summary must fit its declared ``Summary`` (a code bug otherwise: say which field)."""
    if model is None:
        return
    from pydantic import ValidationError

    try:
        model.model_validate(summ)
    except ValidationError as exc:
        loc, msg = first_error(exc)
        raise JudgegapError(f"internal: the {name} summary does not fit {model.__name__}: {loc}: {msg}") from None


def write_outputs(store: Store, out: Path, summary: dict[str, Any]) -> None:
    from judgegap.report import build_report

    written = [out / "results.jsonl", out / "summary.json", out / "report.html"]
    record_written(out, written)  # listed first: a crash mid-write still leaves them ours to remove
    store.export_jsonl("records", out / "results.jsonl")
    tmp = out / "summary.json.tmp"
    tmp.write_text(jsonout.dumps(summary, indent=2))
    tmp.replace(out / "summary.json")
    figures = build_report(store, summary, out / "report.html")
    record_written(out, figures or [])
