"""Metrics: official QA scoring, judge classification measures, bootstrap CIs.

Metrics never read files and never call models: they take arrays and items.
"""

from judgegap.metrics.bootstrap import Estimate, bootstrap_indices, mean_ci, paired_diff_ci
from judgegap.metrics.qa import QA_METRICS, score_item

__all__ = ["Estimate", "QA_METRICS", "bootstrap_indices", "mean_ci", "paired_diff_ci", "score_item"]
