"""End to end on a real pretrained model (SmolLM2-135M-Instruct, from PyPI) and real SQuAD 2.0 items."""

from __future__ import annotations

import json

import pytest
import yaml

from judgegap.backends.models import BUILTIN_MODELS
from tests.conftest import run_cli


@pytest.mark.slow
def test_smollm2_asymmetry_on_real_squad2(tmp_path, data_dir):
    try:
        BUILTIN_MODELS["smollm2-135m-instruct"].locate()
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"SmolLM2 package not installed: {exc}")
    cfg = {"name": "e2e", "output_dir": str(tmp_path / "out"), "data_dir": str(data_dir),
           "datasets": [{"name": "squad2", "n": 6, "seed": 1}],
           "models": [{"name": "smollm2", "model": "smollm2-135m-instruct", "generation": {"max_new_tokens": 12}}],
           "experiments": [{"name": "asymmetry"}]}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    p = run_cli("run", str(tmp_path / "c.yaml"))
    assert p.returncode == 0, p.stderr
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    m = s["experiments"]["asymmetry"]["datasets"]["squad2"]["models"]["smollm2"]
    assert m["generation"]["f1"]["n"] == 6
    recs = [json.loads(x) for x in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    judged = [r for r in recs if r["kind"] == "judgment"]
    # a real model gives real, distinct verdict probabilities that sum with their mass sensibly
    assert len({round(r["p_correct"], 6) for r in judged}) > 3
    assert all(0 < r["verdict_mass"] <= 1.0 + 1e-6 for r in judged)
    assert "Asymmetry: generation vs judging" in (tmp_path / "out" / "report.html").read_text()
    assert "Can I trust this model's judgement of its own answers?" in p.stdout and "asymmetry" in p.stdout
