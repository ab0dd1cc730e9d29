"""The typed shape of summary.json (schema_version 2): the run and each experiment's ``Summary``.

Each built-in experiment declares ``Summary``; ``summarize_store`` validates what ``summarize``
returns against it, so a renamed or missing headline field fails the run that produced it
instead of a report or a downstream script. The top levels a user reads (per dataset, per model,
every headline estimate) are typed; deeper breakdowns stay open mappings (``extra="allow"``).
An estimate is always {value, ci_low, ci_high, n}; an undefined number is NaN in memory and null
in the JSON file.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

SUMMARY_SCHEMA_VERSION = 2


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", protected_namespaces=())


class EstimateModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: float | None
    ci_low: float | None
    ci_high: float | None
    n: int


# -- asymmetry -------------------------------------------------------------------------------------

class JudgeMeasures(_Open):
    accuracy: EstimateModel
    balanced_accuracy: EstimateModel
    auroc: EstimateModel


class AsymmetryModel(_Open):
    n_items: int
    generation: dict[str, Any]
    self_judge: JudgeMeasures | dict[str, Any] | None = None
    trust: dict[str, Any] | None = None
    verdict_own_answers: str | None = None
    verdict_balanced_set: str | None = None
    gap_balanced_set: EstimateModel | None = None
    gap_own_answers_j: EstimateModel | None = None


class AsymmetryDataset(_Open):
    models: dict[str, AsymmetryModel]
    matrix: dict[str, dict[str, Any]]


class AsymmetrySummary(_Open):
    experiment: Literal["asymmetry"]
    f1_threshold: float
    verdict_basis: str
    datasets: dict[str, AsymmetryDataset]


# -- selfscore -------------------------------------------------------------------------------------

class SelfScoreModel(_Open):
    n: int
    generation_accuracy: EstimateModel
    mean_expected_score: float
    score_histogram: list[int]
    vs_gold: dict[str, Any]
    vs_judges: dict[str, Any]
    routing: dict[str, Any]


class SelfScoreSummary(_Open):
    experiment: Literal["selfscore"]
    score_scale: str
    f1_threshold: float
    datasets: dict[str, dict[str, SelfScoreModel]]


# -- pairwise / consistency / attention ------------------------------------------------------------

class PairJudge(_Open):
    mode: str
    n_pairs: int
    order_consistent: dict[str, Any]


class PairwiseSummary(_Open):
    experiment: Literal["pairwise"]
    datasets: dict[str, dict[str, PairJudge]]
    self_preference: dict[str, Any]


class ConsistencySummary(_Open):
    experiment: Literal["ge_consistency"]
    generation_score: str
    judging_scores: dict[str, Any]


class AttentionSummary(_Open):
    experiment: Literal["attention"]
    spans: list[str]
    datasets: dict[str, Any]


class RunSummary(BaseModel):
    """summary.json as a whole."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())
    schema_version: Literal[2]
    name: str | None
    run_status: dict[str, Any]
    config: dict[str, Any]
    env: dict[str, Any]
    experiments: dict[str, dict[str, Any]]
    datasets: dict[str, Any] | None = None
    run: dict[str, Any] | None = None
