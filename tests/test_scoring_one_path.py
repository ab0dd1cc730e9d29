"""One scoring path: a run's per-item scores equal `judgegap score` and the official scripts.

Before this fix, DROP answers inside a run were split on ",", ";", newlines and " and "
before scoring: the exact gold answer "women and children" scored EM 0 / F1 0.25, and the
balanced judged set labelled such gold candidates wrong. The reference here is the
official DROP metric as lm-evaluation-harness ships it (`lm_eval/tasks/drop/utils.py`),
loaded from the installed wheel by path (its package __init__ pulls heavy deps).
"""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
import json
import random
from pathlib import Path

import pytest

from judgegap.data import DATASETS
from judgegap.data.types import QAItem
from judgegap.errors import JudgegapError
from judgegap.experiments.candidates import balanced_candidates
from judgegap.metrics.official import OFFICIAL_EVALUATORS, evaluate_drop, evaluate_squad2
from judgegap.metrics.qa import score_item


def _official_drop():
    try:
        path = Path(str(md.distribution("lm-eval").locate_file("lm_eval/tasks/drop/utils.py")))
    except md.PackageNotFoundError:
        pytest.skip("lm-eval is not installed (test extra)")
    spec = importlib.util.spec_from_file_location("_official_drop_utils", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _official_item(mod, pred, gold_spans) -> tuple[float, float]:
    """The official per-question rule: the max over gold answers of get_metrics."""
    em, f1 = 0.0, 0.0
    for gold in gold_spans:
        if not gold or not gold[0].strip():
            continue
        e, f = mod.get_metrics(pred, tuple(gold))
        em, f1 = max(em, e), max(f1, f)
    return em, f1


def _adversarial(it: QAItem, other: QAItem, rng: random.Random) -> list:
    gold = it.answers[0] if it.answers else ""
    words = it.context.split()
    start = rng.randrange(max(1, len(words) - 4))
    preds: list = [gold, gold.upper(), f" {gold}. ", f"{gold} and {other.answers[0] if other.answers else ''}",
                   gold.replace(" ", ", "), "", "the", "1,000 Pesos", "20,506", "3.0",
                   " ".join(words[start:start + rng.randint(1, 5)]), other.answers[0] if other.answers else "x",
                   "women and children", "a; b\nc", "[/b] ∑ 日本 ﬁ", gold + "\n" + gold]
    for s in it.gold_spans:
        if len(s) > 1:
            preds.append(list(s))            # a multi-span prediction, as the official script takes it
            preds.append(", ".join(s))       # ... and the same spans as ONE string (not split)
    return preds


def test_drop_known_cases_equal_official():
    mod = _official_drop()
    cases = [("women and children", ("women and children",)), ("1,000 Pesos", ("1,000 Pesos",)),
             ("20,506", ("20506",)), ("Smith and Jones", ("Smith", "Jones")), (["Smith", "Jones"], ("Jones", "Smith"))]
    for pred, gold in cases:
        it = QAItem(id="q", dataset="drop", context="", question="", answers=(", ".join(gold),),
                    gold_spans=(gold,))
        assert score_item("drop", pred, it) == _official_item(mod, pred, [gold]), (pred, gold)
    it = QAItem(id="q", dataset="drop", context="", question="", answers=("women and children",),
                gold_spans=(("women and children",),))
    assert score_item("drop", "women and children", it) == (1.0, 1.0)


def test_drop_every_item_equals_official_and_score_cli(data_dir):
    mod = _official_drop()
    items = DATASETS.get("drop").load(data_dir=data_dir)
    assert len(items) == 624
    rng = random.Random(0)
    n = 0
    for k, it in enumerate(items):
        for pred in _adversarial(it, items[(k + 7) % len(items)], rng):
            run_time = score_item("drop", pred, it)
            assert run_time == _official_item(mod, pred, it.gold_spans), (it.id, pred)
            cli, _ = evaluate_drop([it], {it.metadata["query_id"]: pred})
            assert run_time == (cli["global_em"], cli["global_f1"]), (it.id, pred)
            n += 1
    assert n > 624 * 15


@pytest.mark.parametrize("name", ["squad2", "hotpotqa", "musique"])
def test_run_time_equals_score_cli_on_every_item(data_dir, name):
    spec = DATASETS.get(name)
    items = spec.load(data_dir=data_dir)
    rng = random.Random(1)
    evaluate = OFFICIAL_EVALUATORS[spec.metric]
    for k, it in enumerate(items):
        for pred in _adversarial(it, items[(k + 3) % len(items)], rng)[:12]:
            if not isinstance(pred, str):
                continue
            run_time = score_item(spec.metric, pred, it)
            res, _ = evaluate([it], {it.id: pred})
            if spec.metric == "squad2":
                cli = (res["exact"] / 100, res["f1"] / 100)
            elif spec.metric == "hotpotqa":
                cli = (res["em"], res["f1"])
            else:
                if not it.answerable:
                    continue
                cli = (res["answer_em"], res["answer_f1"])
                run_time = (round(run_time[0], 3), round(run_time[1], 3))
            assert run_time == pytest.approx(cli), (it.id, pred)


def test_balanced_set_labels_drop_gold_as_correct(data_dir):
    items = DATASETS.get("drop").load(data_dir=data_dir)
    cands = balanced_candidates(items, "drop", 0.5, seed=0)
    with_gold = [it for it in items if cands[it.id]]
    wrongly_labelled = [it.id for it in with_gold if score_item("drop", dict(cands[it.id])["gold"], it)[1] < 0.5]
    assert wrongly_labelled == []
    # left out: only items whose every gold answer has several spans (27 multi-span questions in the slice)
    left_out = [it for it in items if not cands[it.id]]
    assert 0 < len(left_out) <= 27 and all(all(len(s) > 1 for s in it.gold_spans) for it in left_out)


@pytest.mark.parametrize("value", [None, 3, 2.5, True, ["a"], {"x": 1}])
def test_score_refuses_non_string_answers(value):
    it = QAItem(id="q1", dataset="squad2", context="c", question="q", answers=(), answerable=False)
    with pytest.raises(JudgegapError, match="'q1'.*expected a string"):
        evaluate_squad2([it], {"q1": value})


def test_score_cli_non_string_is_one_line(tmp_path, data_dir):
    from conftest import run_cli

    items = DATASETS.get("squad2").load(data_dir=data_dir)
    preds = {it.id: "" for it in items}
    preds[items[5].id] = None
    f = tmp_path / "p.json"
    f.write_text(json.dumps(preds))
    r = run_cli("score", "squad2", str(f), "--data-dir", str(data_dir))
    assert r.returncode != 0
    assert r.stderr.strip().count("\n") == 0 and "null" in r.stderr and items[5].id in r.stderr
