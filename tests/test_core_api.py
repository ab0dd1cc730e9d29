"""The typed core from outside: Python API, plugins (config, --include, entry points), lazy
imports, no import cycles."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, cli_inproc

PLUGIN_DIR = ROOT / "examples" / "plugin"


def _plugin_cfg(tmp_path: Path, data_dir: Path, **extra) -> dict:
    return {"name": "plug", "output_dir": str(tmp_path / "out"), "data_dir": str(data_dir),
            "bootstrap_resamples": 100,
            "datasets": [{"name": "tiny-facts", "data_file": str(PLUGIN_DIR / "tiny_facts.jsonl")},
                         {"name": "squad2", "n": 5}],
            "models": [{"name": "s", "backend": "scripted", "model": "span"}],
            "experiments": [{"name": "answer_length"}, {"name": "asymmetry", "params": {"text_verdict": False}}],
            **extra}


def test_example_plugin_through_the_cli_with_include(tmp_path, data_dir):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(_plugin_cfg(tmp_path, data_dir)))
    p = cli_inproc("run", str(cfg), "--include", str(PLUGIN_DIR / "judgegap_example_plugin.py"))
    assert p.returncode == 0, p.stderr
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    al = s["experiments"]["answer_length"]["datasets"]
    assert al["tiny-facts"]["s"]["n_items"] == 6 and al["squad2"]["s"]["n_items"] == 5
    assert "tiny-facts" in s["experiments"]["asymmetry"]["datasets"]
    html = (tmp_path / "out" / "report.html").read_text()
    assert 'id="exp-answer_length"' in html and "mean_words" in html


def test_example_plugin_through_jg_run_with_plugins_key(tmp_path, data_dir, monkeypatch):
    import judgegap as jg

    monkeypatch.syspath_prepend(str(PLUGIN_DIR))
    cfg = _plugin_cfg(tmp_path, data_dir, plugins=["judgegap_example_plugin"])
    res = jg.run(cfg, write=False)
    assert res.output_dir is None and not (tmp_path / "out").exists()
    acc = res.answer_length.datasets["tiny-facts"]["s"]
    assert isinstance(acc.accuracy, jg.Estimate) and acc.accuracy.n == 6
    gap = res.asymmetry.datasets["squad2"].models["s"].gap_balanced_set
    assert isinstance(gap, jg.Estimate) and gap.n == 5


def test_jg_run_with_a_backend_object(tmp_path, data_dir):
    import judgegap as jg
    from judgegap.backends.scripted import ScriptedBackend

    cfg = {"name": "obj", "output_dir": str(tmp_path / "out"), "data_dir": str(data_dir), "bootstrap_resamples": 100,
           "datasets": [{"name": "squad2", "n": 4}],
           "models": [{"name": "mine", "backend": "scripted", "model": "span"}],
           "experiments": [{"name": "asymmetry", "params": {"text_verdict": False}}]}
    be = ScriptedBackend("constant", script={"answer": "Paris", "p_yes": 0.9})
    res = jg.run(cfg, backends={"mine": be})
    assert be.calls["generate"] == 4
    assert res.asymmetry.datasets["squad2"].models["mine"].self_judge.accept_rate.value == 1.0
    with pytest.raises(jg.JudgegapError, match="not a configured model"):
        jg.run(cfg, backends={"other": be}, overwrite=True)


README_EXAMPLE_MARK = "```python\nimport judgegap as jg"


def test_readme_python_example_runs(tmp_path, data_dir, monkeypatch):
    text = (ROOT / "README.md").read_text()
    start = text.index(README_EXAMPLE_MARK) + len("```python\n")
    code = text[start:text.index("```", start)]
    assert len(code.strip().splitlines()) <= 8
    monkeypatch.setenv("JUDGEGAP_DATA_DIR", str(Path(data_dir).resolve()))
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    exec(compile(code, "README.md", "exec"), ns)  # noqa: S102 - the README's own example
    assert isinstance(ns["gap"].value, float)


@pytest.mark.parametrize("plugins,expect", [
    (["no_such_plugin_mod"], "plugins[0]: plugin module 'no_such_plugin_mod' not found"),
    (["raising_plugin"], "importing plugin 'raising_plugin' failed: RuntimeError: boom"),
    (["twice_plugin"], "experiment 'asymmetry' is already registered"),
])
def test_bad_plugins_are_one_line(tmp_path, data_dir, monkeypatch, plugins, expect):
    (tmp_path / "raising_plugin.py").write_text("raise RuntimeError('boom')\n")
    (tmp_path / "twice_plugin.py").write_text(
        "import judgegap as jg\n@jg.register_experiment('asymmetry')\nclass X(jg.ExperimentBase):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = _plugin_cfg(tmp_path, data_dir, plugins=plugins)
    cfg["datasets"] = [{"name": "squad2", "n": 3}]
    cfg["experiments"] = ["asymmetry"]
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    p = cli_inproc("run", str(tmp_path / "c.yaml"))
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1 and expect in lines[0], p.stderr
    assert not (tmp_path / "out").exists()


def test_help_and_config_validation_import_no_torch():
    code = ("import sys, runpy\n"
            "sys.argv = ['judgegap', '--help']\n"
            "import judgegap.cli as c\n"
            "try:\n    c.main()\nexcept SystemExit:\n    pass\n"
            "from judgegap.config import load_config, default_config_path\n"
            "load_config(default_config_path())\n"
            "print(sorted(m for m in ('torch', 'transformers', 'accelerate') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stderr


def test_import_judgegap_imports_no_experiment():
    code = "import sys, judgegap\nprint(sorted(m for m in sys.modules if m.startswith('judgegap')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert json.loads(out.stdout.strip().replace("'", '"')) == ["judgegap", "judgegap.errors"]


def _module_imports(path: Path, pkg_root: Path) -> set[str]:
    """Module-level imports of judgegap modules (imports inside functions / TYPE_CHECKING excluded)."""
    tree = ast.parse(path.read_text())
    mod = ".".join(path.relative_to(pkg_root.parent).with_suffix("").parts)
    out: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.dump(node.test):
            continue
        nodes = [node] + (list(ast.walk(node)) if isinstance(node, (ast.If, ast.Try)) else [])
        for n in nodes:
            if isinstance(n, ast.ImportFrom) and n.module and n.module.startswith("judgegap"):
                out.add(n.module)
                for a in n.names:
                    out.add(f"{n.module}.{a.name}")
            elif isinstance(n, ast.Import):
                out.update(a.name for a in n.names if a.name.startswith("judgegap"))
    return {m for m in out if m != mod}


def test_no_import_cycles_among_modules():
    pkg = ROOT / "src" / "judgegap"
    files = {".".join(p.relative_to(pkg.parent).with_suffix("").parts).removesuffix(".__init__"): p
             for p in pkg.rglob("*.py")}
    graph = {m: {d for d in _module_imports(p, pkg) if d in files and d != m} for m, p in files.items()}
    # a package's __init__ importing its own submodules is not a cycle with them
    state: dict[str, int] = {}
    cycles = []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for d in graph[m]:
            if m.startswith(d + ".") or d.startswith(m + "."):
                continue
            if state.get(d) == 1:
                cycles.append(stack[stack.index(d):] + [d] if d in stack else [m, d])
            elif d not in state:
                visit(d, stack + [d])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert cycles == []


def test_the_report_core_names_no_experiment():
    """Adding an experiment never edits report/html.py or the main template: every experiment,
    built-in or plugin, contributes its section through ``report_section`` (or the fallback)."""
    src = ROOT / "src" / "judgegap" / "report"
    core = (src / "html.py").read_text() + (src / "templates" / "report.html.jinja2").read_text()
    from judgegap.experiments import EXPERIMENTS

    for name in EXPERIMENTS.names():
        assert name not in core, name
    for name in ("asymmetry", "pairwise", "ge_consistency", "selfscore", "attention"):
        cls = EXPERIMENTS.get(name)
        assert cls.report_section and cls.report_section.startswith("judgegap.report.sections:")


def test_typed_records_are_frozen_and_a_wrong_field_is_refused_at_write(tmp_path):
    from pydantic import ValidationError

    from judgegap.errors import JudgegapError
    from judgegap.store import Store
    from judgegap.store.records import Judgment

    j = Judgment(dataset="d", item_id="1", judge="m", author="m", role="self_judge", candidate="x", label=1,
                 label_f1=1.0, lp_yes=-0.1, lp_no=-2.3, p_correct=0.9, verdict_mass=0.99, template="t@1")
    with pytest.raises(ValidationError):
        j.p_correct = 0.1  # frozen
    st = Store.in_dir(tmp_path)
    st.start_run("r", {}, {}, 0, "scope")
    st.put_records("asymmetry", "judgment", [("k", j)])
    assert st.typed("asymmetry", "judgment") == [j]
    bad = {**j.model_dump(), "p_correct": "high"}
    with pytest.raises(JudgegapError, match="Judgment: p_correct"):
        st.put_records("asymmetry", "judgment", [("k2", bad)])
    with pytest.raises(JudgegapError, match="extra_field"):
        st.put_records("asymmetry", "judgment", [("k3", {**j.model_dump(), "extra_field": 1})])
    st.close()


def test_every_builtin_experiment_declares_its_summary_and_a_drifted_summary_fails(tmp_path, data_dir):
    import judgegap as jg
    from judgegap.errors import JudgegapError
    from judgegap.experiments import EXPERIMENTS
    from judgegap.experiments.runner import check_summary

    for name in ("asymmetry", "pairwise", "ge_consistency", "selfscore", "attention"):
        assert EXPERIMENTS.get(name).Summary is not None, name
    res = jg.run({"datasets": [{"name": "squad2", "n": 4}], "data_dir": str(data_dir), "bootstrap_resamples": 100,
                  "models": [{"name": "s", "backend": "scripted", "model": "span"}], "experiments": ["asymmetry"],
                  "output_dir": str(tmp_path / "o")}, write=False)
    summ = res.summary["experiments"]["asymmetry"]
    cls = EXPERIMENTS.get("asymmetry").Summary
    check_summary("asymmetry", cls, summ)  # fits
    broken = {**summ, "datasets": {"squad2": {**summ["datasets"]["squad2"], "models": {
        "s": {k: v for k, v in summ["datasets"]["squad2"]["models"]["s"].items() if k != "n_items"}}}}}
    with pytest.raises(JudgegapError, match="asymmetry summary does not fit AsymmetrySummary: datasets.squad2.models.s.n_items"):
        check_summary("asymmetry", cls, broken)


@pytest.mark.parametrize("path", sorted(p.name for p in (ROOT / "configs").glob("*.yaml")
                                        if not p.name.startswith("train_")))
def test_every_shipped_run_config_validates(path):
    """The configs that RESULTS.md's commands run: a renamed param, template or experiment must fail
    here, not hours into someone's run (train_*.yaml: tests/test_training.py)."""
    from judgegap.config import load_config

    cfg = load_config(ROOT / "configs" / path)
    assert cfg.experiments and cfg.models
