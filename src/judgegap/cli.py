"""The ``judgegap`` command line."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from judgegap.errors import ConfigError as ConfigErrorCLI
from judgegap.errors import JudgegapError
from judgegap.store import jsonout

app = typer.Typer(help="Can this model judge answers better than it generates them?", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)
data_app = typer.Typer(help="List, inspect and download datasets.", no_args_is_help=True)
models_app = typer.Typer(help="Built-in real models.", no_args_is_help=True)
store_app = typer.Typer(help="Export what a run stored; import model calls made elsewhere.", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(models_app, name="models")
app.add_typer(store_app, name="store")

# wide tables when output goes to a file or pipe (rich assumes 80 columns there)
out = Console(width=None if sys.stdout.isatty() else 150)
err = Console(stderr=True)


def _e(x: dict[str, Any] | None, pct: bool = True) -> str:
    from judgegap.report.html import fmt

    return fmt(x, pct)


def print_plan(plan: dict[str, Any]) -> None:
    """``run --dry-run``: what the run would read, load and write (every check passed)."""
    t = Table(title="datasets", title_justify="left")
    for col in ("dataset", "requested", "items"):
        t.add_column(col)
    for name, c in plan["datasets"].items():
        t.add_row(escape(name), "all" if c["requested"] is None else str(c["requested"]), str(c["n"]))
    out.print(t)
    t = Table(title="models", title_justify="left")
    for col in ("name", "backend", "model", "adapter"):
        t.add_column(col)
    for m in plan["models"]:
        t.add_row(escape(m["name"]), escape(m["backend"]), escape(m["model"]), escape(m["adapter"] or "-"))
    out.print(t)
    t = Table(title="experiments (in order)", title_justify="left")
    for col in ("experiment", "backend capabilities needed"):
        t.add_column(col)
    for e in plan["experiments"]:
        t.add_row(escape(e["name"]), escape(", ".join(e["needs"]) or "none declared"))
    out.print(t)
    action = {"new": "start a new run in", "resume": "resume the run in", "overwrite": "discard and restart the run in"}
    out.print(f"checks passed: would {action[plan['mode']]} {escape(plan['output_dir'])}/ (dry run: nothing written)",
              highlight=False)


def print_training_plan(plan: dict[str, Any]) -> None:
    """``train --dry-run``: what the training would read and write (every check passed)."""
    sch = plan["schedule"]
    steps = f"{sch['max_steps']} steps" if sch["max_steps"] else f"{sch['epochs']:g} epoch(s)"
    out.print(f"{escape(plan['method'])} on {escape(plan['model'])}: {steps}, batch {sch['batch_size']}"
              f" x {sch['grad_accum']}, lr {sch['learning_rate']:g}, seed {sch['seed']}; "
              + ("full fine-tuning" if plan["lora"] is None else f"LoRA r {plan['lora']['r']}"), highlight=False)
    out.print(f"method params: {escape(json.dumps(plan['params']))}", highlight=False)
    t = Table(title="training items", title_justify="left")
    for col in ("dataset", "items", "passages"):
        t.add_column(col)
    for name, c in plan["train"].items():
        t.add_row(escape(name), str(c["items"]), str(c["passages"]))
    out.print(t)
    if plan["held_out"]:
        t = Table(title=f"held-out evaluation, base vs tuned ({plan['evaluate_backend']} backend)",
                  title_justify="left")
        for col in ("dataset", "requested", "items (none trained on, by id or passage)"):
            t.add_column(col)
        for name, c in plan["held_out"].items():
            t.add_row(escape(name), "all" if c["requested"] is None else str(c["requested"]), str(c["n"]))
        out.print(t)
    else:
        out.print("no evaluation (--no-eval, evaluate.enabled false, or no eval datasets)")
    action = {"new": "start a new training in", "resume": "resume the training in",
              "overwrite": "discard and restart the training in"}
    out.print(f"checks passed: would {action[plan['mode']]} {escape(plan['output_dir'])}/ (dry run: nothing written)",
              highlight=False)


def print_summary(summary: dict[str, Any]) -> None:
    """The headline: can I trust each model's judgement of its own answers? Then the asymmetry."""
    from judgegap.report.headline import headline_rows

    rows = headline_rows(summary)
    if not rows:
        return
    t = Table(title="Can I trust this model's judgement of its own answers? (value [95% CI] (n))")
    for col in ("dataset", "model", "answer", "self-judge AUROC (own answers)", "J (own answers)",
                "own wrong answers accepted %", "routing (self-score)", "asymmetry, own answers",
                "asymmetry, balanced set"):
        t.add_column(col)
    for r in rows:
        rt = r["routing"]
        route = "–" if not rt else (f"accept if conf ≥ {rt['threshold_confidence']:.2f}: "
                                    f"{_pct(rt['heldout_accepted_accuracy'])} held-out accuracy, escalate "
                                    f"{_pct(rt['heldout_escalation_rate'])}" if rt["threshold_confidence"] is not None
                                    and rt["threshold_confidence"] == rt["threshold_confidence"] else "no threshold")
        t.add_row(escape(r["dataset"]), escape(r["model"]), escape(r["trust"].get("answer", "–")),
                  _e(r["auroc_own"], pct=False), _e(r["j_own"], pct=False), _e(r["wrong_accept_rate"]),
                  escape(route), escape(_strip_basis(r["verdict_own_answers"])),
                  escape(_strip_basis(r["verdict_balanced_set"])))
    out.print(t)
    for r in rows:
        if r["trust"].get("why"):
            out.print(f"[bold]{escape(r['model'])}[/bold] on {escape(r['dataset'])}: "
                      f"{escape(r['trust']['answer'])} — {escape(r['trust']['why'])}", highlight=False)
    asym = summary.get("experiments", {}).get("asymmetry", {})
    out.print(f"[dim]asymmetry = judging skill (Youden's J, 0 = guessing) minus generation accuracy (F1 ≥"
              f" {asym.get('f1_threshold')}); own answers = its verdicts on its own answers; balanced set = each"
              " item's gold answer and a wrong span from the passage (easier than its own plausible errors)[/dim]")


def _pct(x: Any) -> str:
    return "n/a" if x is None or x != x else f"{x * 100:.0f}%"


def _strip_basis(v: str | None) -> str:
    return (v or "–").split(": ", 1)[-1]


@app.command()
def run(
    config: Optional[Path] = typer.Argument(None, help="experiment YAML (default: the embedded default config)"),
    resume: bool = typer.Option(False, "--resume", help="continue a killed run; completed calls are not repeated"),
    overwrite: bool = typer.Option(False, "--overwrite", help="discard an earlier run in the output dir"),
    output_dir: Optional[Path] = typer.Option(None, "--output-dir", "-o", help="override output_dir"),
    n: Optional[int] = typer.Option(None, "--n", help="override the sample size of every dataset"),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="override data_dir"),
    dataset: Optional[list[str]] = typer.Option(None, "--dataset", help="run only this dataset of the config"
                                                " (repeatable): a long job in parts, each reusing the call cache"),
    include: Optional[list[Path]] = typer.Option(None, "--include", help="a plugin .py file to import first"
                                                 " (registers datasets / backends / experiments); repeatable"),
    dry_run: bool = typer.Option(False, "--dry-run", help="check config, data, model files and output dir as the"
                                 " run would, print the plan, load no model and write nothing"),
) -> None:
    """Run the experiments of CONFIG and write store, results.jsonl, summary.json and report.html."""
    run_command(config, resume=resume, overwrite=overwrite, output_dir=output_dir, n=n, data_dir=data_dir,
                dataset=dataset, include=include, dry_run=dry_run)


def run_command(config: Path | None, resume: bool = False, overwrite: bool = False, output_dir: Path | None = None,
                n: int | None = None, data_dir: Path | None = None, dataset: list[str] | None = None,
                include: list[Path] | None = None, dry_run: bool = False) -> None:
    """``run``'s body with plain defaults: the commands built on ``run`` call this, never the typer
    command itself, whose omitted options would be typer's (truthy) option objects."""
    from judgegap.config import default_config_path, load_config
    from judgegap.experiments.runner import plan_run, run_config
    from judgegap.plugins import load_file

    for k, f in enumerate(include or []):
        load_file(f, f"--include[{k}]")

    cfg = apply_overrides(load_config(config or default_config_path()), output_dir=output_dir, data_dir=data_dir,
                          n=n, datasets=dataset)
    if dry_run:
        print_plan(plan_run(cfg, resume=resume, overwrite=overwrite))
        return
    summary = run_config(cfg, resume=resume, overwrite=overwrite, console=err)
    print_summary(summary)
    out.print(f"results in {escape(str(cfg.output_dir))}/ (report.html, summary.json, results.jsonl, {cfg.output_dir}/"
              "judgegap.sqlite)")


@app.command()
def train(
    config: Path = typer.Argument(..., help="training YAML (see configs/train_*.yaml)"),
    resume: bool = typer.Option(False, "--resume", help="continue a killed training from its last checkpoint"),
    overwrite: bool = typer.Option(False, "--overwrite", help="discard an earlier training run in the output dir"),
    output_dir: Optional[Path] = typer.Option(None, "--output-dir", "-o", help="override output_dir"),
    no_eval: bool = typer.Option(False, "--no-eval", help="train only; skip base-vs-tuned on held-out items"),
    include: Optional[list[Path]] = typer.Option(None, "--include", help="a plugin .py file to import first"),
    dry_run: bool = typer.Option(False, "--dry-run", help="make every check the training makes first, print the"
                                 " plan (training and held-out items, schedule), load no model and write nothing"),
) -> None:
    """Fine-tune a model (LoRA) with a registered method, then compare it with its base on held-out items."""
    from judgegap.plugins import load_file
    from judgegap.training.config import load_train_config
    from judgegap.training.pipeline import plan_training, run_training

    for k, f in enumerate(include or []):
        load_file(f, f"--include[{k}]")
    cfg = load_train_config(config)
    if output_dir is not None:
        cfg = cfg.model_copy(update={"output_dir": output_dir})
    if dry_run:
        print_training_plan(plan_training(cfg, resume=resume, overwrite=overwrite, evaluate=not no_eval))
        return
    summary = run_training(cfg, resume=resume, overwrite=overwrite, evaluate=not no_eval, console=err)
    tr = summary["training"]
    out.print(f"trained {escape(cfg.method.name)} on {escape(cfg.model.model)}: {tr['steps']} steps,"
              f" {tr['examples']} examples, final loss {tr['final_loss']:.4f},"
              f" {tr['seconds_per_step'] or float('nan'):.2f} s/step, peak {tr['peak_rss_gib']:.2f} GiB",
              highlight=False)
    ev = summary.get("evaluation")
    if ev:
        if ev["transfer"]:  # asymmetry in the evaluation
            print_transfer(ev["transfer"])
        if ev.get("selfscore_transfer"):
            print_selfscore_transfer(ev["selfscore_transfer"])
        for line in ev["reading"]:
            out.print(escape(line), highlight=False)
    out.print(f"adapter in {escape(str(cfg.output_dir))}/adapter; use it as `adapter:` on an hf model entry")


def _diff_table(title: str, first: str, measures: tuple[str, ...], rows: list[tuple[str, dict[str, Any]]]) -> None:
    """One rich table of base → tuned (Δ [95% CI]) per measure; ``rows`` are (label, transfer row)."""
    from judgegap.metrics.bootstrap import Estimate

    t = Table(title=title)
    t.add_column(first)
    t.add_column("n", justify="right")
    for m in measures:
        t.add_column(m)
    for label, row in rows:
        cells = []
        for m in measures:
            d, b, tu = (Estimate.from_dict(row[m][k]) for k in ("diff", "base", "tuned"))
            cells.append("n/a" if d.value != d.value else
                         f"{b.value:.2f}→{tu.value:.2f} ({d.value:+.2f} [{d.ci_low:+.2f}, {d.ci_high:+.2f}])")
        t.add_row(escape(label), str(row["n_items"]), *cells)
    out.print(t)


def print_transfer(matrix: dict[str, Any]) -> None:
    from judgegap.training.transfer import MEASURES

    _diff_table("tuned − base on held-out items (paired bootstrap 95% CI)", "dataset", MEASURES, list(matrix.items()))


def print_selfscore_transfer(ss: dict[str, Any]) -> None:
    """tuned - base self-score measures per dataset (own answers; and the same answers where scored)."""
    from judgegap.training.transfer import SELFSCORE_MEASURES

    rows = [(f"{ds} · {label}", r) for ds, row in ss.items()
            for label, r in (("own", row), ("same (base's)", row.get("same_answers"))) if r is not None]
    _diff_table("self-score, tuned − base on held-out items (paired bootstrap 95% CI)", "dataset · answers",
                SELFSCORE_MEASURES, rows)


@app.command("judge-pairs")
def judge_pairs(
    config: Path = typer.Argument(..., help="YAML with pairwise datasets and the pairwise experiment"),
    resume: bool = typer.Option(False, "--resume"),
    overwrite: bool = typer.Option(False, "--overwrite"),
    output_dir: Optional[Path] = typer.Option(None, "--output-dir", "-o"),
    n: Optional[int] = typer.Option(None, "--n", help="override the sample size of every dataset"),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir"),
    dataset: Optional[list[str]] = typer.Option(None, "--dataset", help="judge only this set of the config"
                                                " (repeatable; its saved verdicts come along, the others' stay out)"),
    include: Optional[list[Path]] = typer.Option(None, "--include", help="a plugin .py file to import first"),
    dry_run: bool = typer.Option(False, "--dry-run", help="check and print the plan as `run --dry-run` does"),
) -> None:
    """Judge pairwise sets in both orders and measure agreement with the human labels."""
    _run_requiring("pairwise", config, resume=resume, overwrite=overwrite, output_dir=output_dir, n=n,
                   data_dir=data_dir, dataset=dataset, include=include, dry_run=dry_run)


def apply_overrides(cfg: Any, output_dir: Path | None = None, data_dir: Path | None = None,
                    n: int | None = None, datasets: list[str] | None = None) -> Any:
    """Command-line overrides, validated exactly like the config file's own values.

    ``datasets`` keeps only the named entries of ``datasets:`` — a 9-hour CPU job (configs/qwen_full.yaml)
    can run one dataset at a time; the call cache lives outside the run, so a later run of the whole
    config repeats none of those calls.
    """
    from judgegap.config import parse_config

    if output_dir is None and data_dir is None and n is None and not datasets:
        return cfg
    d = json.loads(cfg.model_dump_json())
    if datasets:
        have = [ds["name"] for ds in d["datasets"]]
        unknown = [x for x in datasets if x not in have]
        if unknown:
            raise JudgegapError(f"--dataset {unknown[0]!r}: not in this config's datasets ({', '.join(have)})")
        d["datasets"] = [ds for ds in d["datasets"] if ds["name"] in datasets]
        from judgegap.experiments import EXPERIMENTS

        for e in d["experiments"]:  # e.g. pairwise's saved verdicts of a left-out dataset
            keep = getattr(EXPERIMENTS.get(e["name"]), "keep_datasets", None)  # a plugin may not derive ExperimentBase
            e["params"] = keep(e["params"], set(datasets)) if keep else e["params"]
    if output_dir is not None:
        d["output_dir"] = str(output_dir)
    if data_dir is not None:
        d["data_dir"] = str(data_dir)
    if n is not None:
        for ds in d["datasets"]:
            ds["n"] = n
    return parse_config(d, "command line (--n / -o / --data-dir / --dataset)")


def _run_requiring(experiment: str, config: Path, include: list[Path] | None = None, **kw: Any) -> None:
    """``run`` for a command that exists for one experiment (checked before any work)."""
    from judgegap.config import load_config
    from judgegap.plugins import load_file

    for k, f in enumerate(include or []):  # before the config: it may name a plugin's dataset or backend
        load_file(f, f"--include[{k}]")
    if not any(e.name == experiment for e in load_config(config).experiments):
        raise JudgegapError(f"{config}: this command needs the {experiment} experiment in experiments")
    run_command(config, include=None, **kw)


@app.command("attention")
def attention_cmd(
    config: Path = typer.Argument(..., help="YAML with QA datasets, hf models and the attention experiment"),
    resume: bool = typer.Option(False, "--resume"),
    overwrite: bool = typer.Option(False, "--overwrite"),
    output_dir: Optional[Path] = typer.Option(None, "--output-dir", "-o"),
    n: Optional[int] = typer.Option(None, "--n", help="override the sample size of every dataset"),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir"),
    dataset: Optional[list[str]] = typer.Option(None, "--dataset", help="run only this dataset of the config"
                                                " (repeatable)"),
    include: Optional[list[Path]] = typer.Option(None, "--include", help="a plugin .py file to import first"),
    dry_run: bool = typer.Option(False, "--dry-run", help="check and print the plan as `run --dry-run` does"),
) -> None:
    """Attention mass on passage / question / answer in generate vs judge mode, per layer and head."""
    _run_requiring("attention", config, resume=resume, overwrite=overwrite, output_dir=output_dir, n=n,
                   data_dir=data_dir, dataset=dataset, include=include, dry_run=dry_run)


@app.command()
def agreement(
    verdicts: Path = typer.Argument(..., help="saved verdicts: JSON list or JSONL of {id, verdict} (or *_result)"),
    dataset: str = typer.Option(..., "--dataset", help="pairwise dataset the ids refer to (e.g. pandalm)"),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir"),
    data_file: Optional[Path] = typer.Option(None, "--data-file"),
    name: Optional[str] = typer.Option(None, "--name", help="judge name in the output (default: file name)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """Score verdicts produced elsewhere against a pairwise set's human labels (no model needed)."""
    from judgegap.data import DATASETS
    from judgegap.experiments.pairwise import saved_verdict_records, summarize_pairs
    from judgegap.metrics.bootstrap import settings as bootstrap_settings

    spec = DATASETS.get(dataset)
    if spec.kind != "pairs":
        raise JudgegapError(f"dataset {dataset} is not a pairwise set (pairwise sets: "
                            + ", ".join(n for n in DATASETS if DATASETS.get(n).kind == "pairs") + ")")
    items = spec.load(data_dir=data_dir, data_file=data_file)
    judge = name or re.sub(r"(\.jsonl?)?(\.gz)?$", "", verdicts.name)
    recs = [r for _, r in saved_verdict_records(judge, dataset, items, verdicts)]
    res = summarize_pairs(recs, [], bootstrap_settings())["datasets"][dataset][judge]
    oc = res["order_consistent"]
    jp = res["judged_pairs"] or {}
    keys = ("accuracy_with_ties", "accuracy_without_ties", "kappa", "kappa_without_ties", "macro_f1",
            "judge_tie_rate")
    flat = {"judge": judge, "dataset": dataset, "n_pairs": res["n_pairs"], "n_missing": res["n_missing"],
            "n_unparseable": res["n_unparseable"], "coverage": res["coverage"],
            **{k: jp.get(k) for k in keys},
            "all_pairs": {"convention": "every pair scored; a missing or unparseable verdict counts as wrong",
                          **{k: oc[k] for k in keys}},
            "published_convention": {"convention": "every pair scored; no verdict counts as a tie and can match a"
                                                   " human tie (how PandaLM's paper scored)",
                                     **{k: res["published_convention"][k] for k in keys}},
            "length": res["length"]}
    if "annotators" in res:
        flat["annotators"] = res["annotators"]
    if as_json:
        print(jsonout.dumps(flat))
        return
    cov = flat["coverage"]
    t = Table(title=escape(f"{judge} on {dataset}: value [95% CI] (n)"))
    t.add_column("measure")
    t.add_column(f"judged pairs ({cov['n_judged']} of {cov['n_pairs']})")
    t.add_column("all pairs (no verdict = wrong)")
    t.add_column("all pairs (no verdict = tie; published)")
    for k in keys:
        pct = k.startswith("acc") or k.endswith("rate")
        t.add_row(k, _e(flat[k], pct=pct), _e(flat["all_pairs"][k], pct=pct),
                  _e(flat["published_convention"][k], pct=pct))
    t.add_row("unparseable verdicts", str(flat["n_unparseable"]), "", "")
    t.add_row("missing verdicts", str(flat["n_missing"]), "", "")
    if "annotators" in flat:
        t.add_row("human-human kappa (mean pairwise)", _e(flat["annotators"]["mean_pairwise_kappa"], pct=False), "", "")
    out.print(t)
    if cov["n_judged"] < cov["n_pairs"]:
        err.print(f"[yellow]coverage: {cov['n_judged']} of {cov['n_pairs']} pairs have a usable verdict"
                  f" ({flat['n_missing']} missing, {flat['n_unparseable']} unparseable)[/yellow]")


def _check_range(option: str, value: float | None, lo: float | None = None, hi: float | None = None,
                 lo_open: bool = False) -> None:
    """One clear line (exit 2) for a numeric option outside its meaningful range."""
    if value is None:
        return
    bad = (lo is not None and (value < lo or (lo_open and value == lo))) or (hi is not None and value > hi)
    if bad or value != value:
        lo_s = "" if lo is None else (f"> {lo:g}" if lo_open else f">= {lo:g}")
        hi_s = "" if hi is None else f"<= {hi:g}"
        raise ConfigErrorCLI(f"{option} must be {' and '.join(x for x in (lo_s, hi_s) if x)}, got {value:g}")


def _route_source(source: Path, model: str | None, dataset: str | None,
                  score_range: tuple[float, float]) -> tuple[Any, Any, str]:
    """(self-scores, correctness, description) from a run dir or a JSONL log with outcomes."""
    import numpy as np

    from judgegap.store import Store

    if source.is_dir():
        if not (source / Store.FILENAME).is_file():
            raise JudgegapError(f"no results store in {source}")
        recs = Store.in_dir(source).records("selfscore", "scored_answer")
        if not recs:
            raise JudgegapError(f"{source}: the run has no selfscore records (add the selfscore experiment)")
        models = sorted({r["model"] for r in recs})
        dss = sorted({r["dataset"] for r in recs})
        model = model or models[0]
        if model not in models:
            raise JudgegapError(f"model {model!r} not in {source} (models: {', '.join(models)})")
        if dataset and dataset not in dss:
            raise JudgegapError(f"dataset {dataset!r} not in {source} (datasets: {', '.join(dss)})")
        rs = [r for r in recs if r["model"] == model and (dataset is None or r["dataset"] == dataset)]
        return (np.array([r["scores"][model]["expected"] for r in rs]), np.array([r["correct"] for r in rs], float),
                f"{model} on {dataset or ', '.join(dss)} (expected self-score 1-10)")
    from judgegap.monitor import read_log

    df, _, bad, _ = read_log(source)
    df = df[df["outcome"].notna()]
    if len(df) < 10:
        raise JudgegapError(f"{source}: needs at least 10 lines with an outcome to fit a threshold")
    if bad:
        err.print(f"[yellow]{bad} bad log lines skipped[/yellow]")
    return df["score"].to_numpy(float), df["outcome"].to_numpy(float), f"{source.name} (self_score, outcome)"


@app.command()
def route(
    source: Path = typer.Argument(..., help="a run dir with selfscore results, or a JSONL log with self_score + outcome"),
    model: Optional[str] = typer.Option(None, "--model"),
    dataset: Optional[str] = typer.Option(None, "--dataset"),
    target_accuracy: Optional[float] = typer.Option(None, "--target-accuracy", help="accepted answers at least this accurate"),
    target_escalation: Optional[float] = typer.Option(None, "--target-escalation", help="escalate at most this fraction"),
    escalation_cost: float = typer.Option(0.3, "--escalation-cost", help="cost of escalating one item (an error costs 1)"),
    folds: int = typer.Option(5, "--folds"),
    score_min: float = typer.Option(1.0, "--score-min"),
    score_max: float = typer.Option(10.0, "--score-max"),
    save_router: Optional[Path] = typer.Option(None, "--save-router", help="write a Router JSON (needs --target-accuracy)"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Risk-coverage, a cross-validated threshold for a target, and the cost curve of escalation."""
    from judgegap.routing import Router, cost_curve, cross_validated_threshold, risk_coverage
    from judgegap.routing.curves import aurc

    if (target_accuracy is None) == (target_escalation is None):
        raise JudgegapError("give exactly one of --target-accuracy or --target-escalation")
    if score_max <= score_min:
        raise JudgegapError("--score-max must be above --score-min")
    _check_range("--target-accuracy", target_accuracy, 0, 1, lo_open=True)
    _check_range("--target-escalation", target_escalation, 0, 1)
    _check_range("--escalation-cost", escalation_cost, 0, 1)
    _check_range("--folds", folds, 2, 50)
    from judgegap.monitor.drift import split_out_of_range

    scores, y, what = _route_source(source, model, dataset, (score_min, score_max))
    inside = split_out_of_range(scores, (score_min, score_max), str(source))
    if not inside.all():
        err.print(f"[yellow]{int((~inside).sum())} self-score(s) outside {score_min:g}..{score_max:g} excluded"
                  "[/yellow]")
        scores, y = scores[inside], y[inside]
    conf = (scores - score_min) / (score_max - score_min)
    target = {"target_accuracy": target_accuracy} if target_accuracy is not None else \
        {"target_escalation": target_escalation}
    cv = cross_validated_threshold(conf, y, folds=folds, **target)
    cc = cost_curve(conf, y, escalation_cost)
    rc = risk_coverage(conf, y)
    to_score = (lambda c: score_min + c * (score_max - score_min))
    res = {"source": what, "n": int(len(y)), "base_accuracy": float(y.mean()), "aurc": aurc(conf, y),
           "threshold_confidence": cv["threshold"], "threshold_score": to_score(cv["threshold"]),
           "heldout_accepted_accuracy": cv["heldout_accepted_accuracy"],
           "heldout_escalation_rate": cv["heldout_escalation_rate"], "folds": cv["folds"],
           "fold_thresholds": cv["fold_thresholds"], "target": target,
           "cost": {"escalation_cost": escalation_cost, "best_threshold_confidence": cc["best_threshold"],
                    "best_cost_per_item": cc["best_cost"], "accept_all": cc["cost_accept_all"],
                    "escalate_all": cc["cost_escalate_all"]},
           "risk_coverage": [{"threshold": float(t), "coverage": float(c), "accuracy": float(a)}
                             for t, c, a in zip(rc["threshold"], rc["coverage"], rc["accuracy"])]}
    if save_router:
        if target_accuracy is None:
            raise JudgegapError("--save-router needs --target-accuracy")
        r = Router.fit(scores, y, target_accuracy, score_range=(score_min, score_max), folds=folds)
        r.save(save_router)
        res["router"] = str(save_router)
    if as_json:
        print(jsonout.dumps(res, default=float))
        return
    out.print(f"[bold]{escape(what)}[/bold]: n={res['n']}, base accuracy {res['base_accuracy']:.3f}, AURC {res['aurc']:.3f}")
    out.print(f"threshold (confidence) {cv['threshold']:.3f} = score {res['threshold_score']:.2f} for {target}; "
              f"held-out ({cv['folds']}-fold): accepted accuracy {cv['heldout_accepted_accuracy']:.3f}, "
              f"escalation {cv['heldout_escalation_rate']:.3f}")
    out.print(f"cheapest threshold at escalation cost {escalation_cost}: {cc['best_threshold']:.3f} "
              f"(cost/item {cc['best_cost']:.3f}; accept all {cc['cost_accept_all']:.3f}, escalate all "
              f"{cc['cost_escalate_all']:.3f})")
    if save_router:
        out.print(f"router saved to {escape(str(save_router))}")


@app.command()
def monitor(
    log: Path = typer.Argument(..., help="JSONL log: {id, timestamp, self_score, outcome?} per line"),
    window: str = typer.Option("1D", "--window", help="pandas frequency: 1h, 6h, 1D, 7D, ..."),
    baseline_windows: int = typer.Option(1, "--baseline-windows"),
    score_min: float = typer.Option(1.0, "--score-min"),
    score_max: float = typer.Option(10.0, "--score-max"),
    psi_threshold: float = typer.Option(0.2, "--psi-threshold"),
    min_window: int = typer.Option(20, "--min-window", help="windows with fewer lines are never flagged"),
    html: Optional[Path] = typer.Option(None, "--html", help="write an HTML report here"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Calibration and score distribution per time window of a production log; flag drift."""
    from judgegap.monitor import monitor_log

    if score_max <= score_min:
        raise JudgegapError("--score-max must be above --score-min")
    _check_range("--psi-threshold", psi_threshold, 0, None, lo_open=True)
    _check_range("--min-window", min_window, 1)
    _check_range("--baseline-windows", baseline_windows, 1)
    from judgegap.report.monitor_view import build_monitor_report

    res = monitor_log(log, window=window, score_range=(score_min, score_max), baseline_windows=baseline_windows,
                      psi_threshold=psi_threshold, min_window=min_window).to_dict()
    if html:
        build_monitor_report(res, log.name, html, psi_threshold, min_window)
    if as_json:
        print(jsonout.dumps(res))
    else:
        t = Table(title=escape(f"{log.name}: {res['n_lines']} lines, {res['n_bad_lines']} bad"))
        for col in ("window", "n", "mean score", "accuracy", "ECE", "PSI", "drift"):
            t.add_column(col)
        for w in res["windows"]:
            t.add_row(escape(w["window"] + (" (baseline)" if w["is_baseline"] else "")), str(w["n"]),
                      _e(w["mean_score"], pct=False), _e(w.get("accuracy")), _e(w.get("ece"), pct=False),
                      f"{w['psi']:.3f}", "; ".join(w["drift"]) or "–")
        out.print(t)
        if res["n_bad_lines"]:
            err.print(f"[yellow]{res['n_bad_lines']} bad lines skipped:"
                      f" {escape('; '.join(res['bad_line_examples']))}[/yellow]")
        out.print("[red]DRIFT[/red] in " + escape(", ".join(res["flagged_windows"])) if res["drift"]
                  else "no drift flagged")
    if res["drift"]:
        raise typer.Exit(3)


@app.command()
def report(output_dir: Path = typer.Argument(..., help="a run's output dir")) -> None:
    """Rebuild summary.json and report.html from the store, without calling any model."""
    from judgegap.experiments.runner import summarize_store, write_outputs
    from judgegap.store import Store
    from judgegap.store.rundir import RunLock

    if not (output_dir / Store.FILENAME).is_file():
        raise JudgegapError(f"no results store in {output_dir} (expected {output_dir / Store.FILENAME})")
    with RunLock(output_dir, "report"):
        store = Store.in_dir(output_dir)
        store.mark_stale_runs()  # we hold the lock: a run still marked 'running' was killed
        summary = summarize_store(store)
        last = store.last_run()
        if last and last.get("summary"):
            summary["run"] = last["summary"].get("run")
        write_outputs(store, output_dir, summary)
    print_summary(summary)
    rs = summary.get("run_status", {})
    if not rs.get("complete", True):
        err.print(f"[yellow]warning: {escape(rs['note'])}[/yellow]")
    out.print(f"report rebuilt: {escape(str(output_dir / 'report.html'))}")


@app.command("export-hf")
def export_hf_cmd(
    model: str = typer.Argument(..., help="a built-in name (smollm2-135m-instruct, ...) or a .gguf file"),
    out_dir: Path = typer.Argument(..., help="new folder for the Hugging Face copy"),
) -> None:
    """Write a GGUF model as a Hugging Face folder (fp32 safetensors + tokenizer) for vLLM or SGLang to serve."""
    from judgegap.backends.hf import export_hf

    path = export_hf(model, out_dir)
    out.print(f"wrote {escape(str(path))}; serve it with e.g. `vllm serve {escape(str(path))}` and point an"
              " `openai` model at the server (README: At scale)", highlight=False)


@app.command()
def score(
    dataset: str = typer.Argument(..., help="dataset name (squad2, drop, hotpotqa, musique, ...)"),
    predictions: Path = typer.Argument(..., help="predictions JSON in the official format ({id: answer})"),
    data_file: Optional[Path] = typer.Option(None, "--data-file", help="gold file (default: found in data dir)"),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object with the official keys"),
) -> None:
    """Score a predictions file with the dataset's official metric."""
    from judgegap.data import DATASETS
    from judgegap.data.io import read_json
    from judgegap.metrics.official import OFFICIAL_EVALUATORS

    spec = DATASETS.get(dataset)
    items = spec.load(data_dir=data_dir, data_file=data_file)
    preds = read_json(predictions)
    if not isinstance(preds, dict):
        raise JudgegapError(f"{predictions}: expected a JSON object mapping question ids to answers")
    result, missing = OFFICIAL_EVALUATORS[spec.metric](items, preds)
    if missing:
        err.print(f"[yellow]{len(missing)} of {len(items)} questions have no prediction (scored as empty)[/yellow]")
    if as_json:
        print(jsonout.dumps(result))
    else:
        t = Table(title=escape(f"{dataset}: {predictions}"))
        t.add_column("metric")
        t.add_column("value")
        for k, v in result.items():
            t.add_row(k, json.dumps(v) if isinstance(v, dict) else f"{v:.4f}" if isinstance(v, float) else str(v))
        out.print(t)


@data_app.command("list")
def data_list(data_dir: Optional[Path] = typer.Option(None, "--data-dir")) -> None:
    """Registered datasets and whether their file is present."""
    from judgegap.data import DATASETS, default_data_dir

    root = data_dir or default_data_dir()
    t = Table(title=f"datasets (data dir: {root})")
    for col in ("name", "description", "file"):
        t.add_column(col)
    for name in DATASETS:
        spec = DATASETS.get(name)
        try:
            where = escape(str(spec.find_file(root)))
        except JudgegapError:
            where = "[red]not found[/red]"
        t.add_row(name, spec.description, where)
    out.print(t)


@data_app.command("show")
def data_show(
    name: str = typer.Argument(...),
    n: int = typer.Option(3, "--n"),
    seed: int = typer.Option(0, "--seed"),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir"),
    data_file: Optional[Path] = typer.Option(None, "--data-file"),
    as_json: bool = typer.Option(False, "--json", help="one JSON item per line"),
) -> None:
    """Print N items of a dataset (deterministic sample)."""
    from judgegap.data import DATASETS, load_dataset

    spec = DATASETS.get(name)
    items = load_dataset(name, data_dir=data_dir, data_file=data_file, n=n, seed=seed)
    if as_json:
        for it in items:
            print(json.dumps(it.to_dict(), ensure_ascii=False))
        return
    total = len(spec.load(data_dir=data_dir, data_file=data_file))
    if spec.kind == "pairs":
        out.print(f"[bold]{escape(name)}[/bold]: {escape(spec.description)} — {total} pairs; showing {len(items)}")
        for it in items:
            out.print(f"\n[bold cyan]{escape(it.id)}[/bold cyan]  label={escape(str(it.label))}"
                      f"  votes={escape(','.join(it.votes) or '-')}")
            for lab, txt in (("Instruction", it.instruction), ("A", it.response_a), ("B", it.response_b)):
                out.print(f"[bold]{lab}:[/bold] " + escape(txt if len(txt) < 300 else txt[:300] + " …"),
                          highlight=False)
        return
    out.print(f"[bold]{escape(name)}[/bold]: {escape(spec.description)} — {total} questions; showing {len(items)}")
    for it in items:
        ctx = it.context if len(it.context) < 400 else it.context[:400] + " …"
        out.print(f"\n[bold cyan]{escape(it.id)}[/bold cyan]  answerable={it.answerable}"
                  f"  {escape(str(it.metadata.get('question_type', '')))}", markup=True)
        out.print(f"[bold]Q:[/bold] {escape(it.question)}", markup=True, highlight=False)
        out.print("[bold]Gold:[/bold] " + escape(" | ".join(it.answers) if it.answers else "(unanswerable)"),
                  highlight=False)
        out.print(f"[dim]{escape(ctx)}[/dim]", highlight=False)


@data_app.command("download")
def data_download(
    name: str = typer.Argument(...),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir"),
    url: Optional[str] = typer.Option(None, "--url", help="override the official source URL (e.g. a mirror)"),
) -> None:
    """Download a dataset's official file into the data dir (needs internet)."""
    from judgegap.data import default_data_dir
    from judgegap.data.download import download

    path = download(name, data_dir or default_data_dir(), url)
    out.print(f"saved {escape(str(path))}")


@models_app.command("list")
def models_list() -> None:
    """Built-in model names and whether their package is installed."""
    from judgegap.backends.models import BUILTIN_MODELS

    t = Table(title="built-in models")
    for col in ("name", "description", "status / install"):
        t.add_column(col)
    for name, spec in BUILTIN_MODELS.items():
        status = "installed" if spec.installed() else spec.install
        t.add_row(name, spec.description, status)
    out.print(t)


@store_app.command("export")
def store_export(
    output_dir: Path = typer.Argument(...),
    table: str = typer.Option("records", "--table", help="records, calls or runs"),
    dest: Optional[Path] = typer.Option(None, "--out", help="JSONL file to write (gzip when it ends in .gz)"),
    model: Optional[str] = typer.Option(None, "--model", help="calls: only those of the model with this name"),
    without_requests: bool = typer.Option(False, "--without-requests", help="calls: leave the prompts out (keys"
                                          " and responses still let `store import-calls` reuse them elsewhere)"),
) -> None:
    """Export a store table as JSON Lines."""
    from judgegap.store import Store

    if not (output_dir / Store.FILENAME).is_file():
        raise JudgegapError(f"no results store in {output_dir}")
    if table not in ("records", "calls", "runs"):
        raise JudgegapError(f"unknown table {table!r} (records, calls, runs)")
    if table != "calls" and (model is not None or without_requests):
        raise JudgegapError("--model and --without-requests apply to --table calls")
    path = dest or output_dir / f"{table}.jsonl"
    store = Store.in_dir(output_dir)
    if table == "calls":  # the run's calls live in the call cache it used
        from judgegap.store.calls import CallCache, export_calls

        last = store.last_run()
        cache = CallCache((last["config"].get("call_cache") if last else None) or None)
        try:
            n = export_calls(cache, path, model=model, requests=not without_requests)
        finally:
            cache.close()
    else:
        n = store.export_jsonl(table, path)
    out.print(f"wrote {n} rows to {escape(str(path))}")


@store_app.command("import-calls")
def store_import_calls(
    file: Path = typer.Argument(..., help="calls exported by `judgegap store export DIR --table calls`"),
    call_cache: Optional[Path] = typer.Option(None, "--call-cache", help="the cache to add them to (default:"
                                              " $JUDGEGAP_CALL_CACHE, else ~/.cache/judgegap/calls.sqlite)"),
) -> None:
    """Add model calls made on another machine to the call cache: a run of the same config here (or its
    --resume) then repeats none of them. Calls already cached keep their own response."""
    from judgegap.store.calls import CallCache, read_exported_calls

    rows = read_exported_calls(file)  # every line checked before anything is added
    cache = CallCache(call_cache)
    added = cache.import_calls(rows)
    cache.close()
    out.print(f"imported {added} calls into {escape(str(cache.path))} ({len(rows) - added} were already cached)")


def _on_signal(signum: int, _frame: Any) -> None:
    """Ctrl-C / SIGTERM become an error we report ourselves: typer would turn a KeyboardInterrupt
    into a silent exit 130 before any handler of ours ran."""
    from judgegap.errors import INTERRUPT_MESSAGE, Interrupted, mark_interrupted

    mark_interrupted()
    raise Interrupted(INTERRUPT_MESSAGE)


def main() -> None:
    import signal

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        app()
    except JudgegapError as exc:
        from judgegap.errors import redact_secrets

        msg = " ".join(redact_secrets(str(exc)).split())
        print(f"error: {msg}", file=sys.stderr)  # one line, never wrapped
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("error: interrupted: completed model calls are stored; rerun with --resume to continue",
              file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
