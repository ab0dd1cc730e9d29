"""Bootstrap CIs and judge measures against scipy / scikit-learn and hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import balanced_accuracy_score, brier_score_loss, roc_auc_score

from judgegap.metrics.judging import auroc, balanced_accuracy, brier

from judgegap.metrics.bootstrap import mean_ci, paired_diff_ci
from judgegap.metrics.judging import judge_report


def test_mean_ci_matches_scipy_percentile_bootstrap():
    rng = np.random.default_rng(0)
    x = rng.binomial(1, 0.3, size=300).astype(float)
    est = mean_ci(x, n_resamples=4000, seed=1)
    ref = stats.bootstrap((x,), np.mean, n_resamples=4000, method="percentile",
                          random_state=np.random.default_rng(2)).confidence_interval
    assert est.value == pytest.approx(x.mean())
    assert est.ci_low == pytest.approx(ref.low, abs=0.012) and est.ci_high == pytest.approx(ref.high, abs=0.012)
    # roughly the normal-approximation width
    se = np.sqrt(0.3 * 0.7 / 300)
    assert est.ci_high - est.ci_low == pytest.approx(2 * 1.96 * se, rel=0.15)


def test_paired_ci_is_narrower_than_unpaired_for_correlated_data():
    rng = np.random.default_rng(3)
    a = rng.normal(size=200)
    b = a + rng.normal(scale=0.1, size=200) - 0.05
    paired = paired_diff_ci(a, b)
    assert paired.value == pytest.approx(a.mean() - b.mean())
    assert paired.ci_low > 0  # the small shift is detected because pairs move together
    unpaired_width = mean_ci(a).ci_high - mean_ci(a).ci_low
    assert paired.ci_high - paired.ci_low < unpaired_width / 5


def test_degenerate_and_empty():
    e = mean_ci([1.0] * 10)
    assert e.value == e.ci_low == e.ci_high == 1.0
    assert np.isnan(mean_ci([]).value)


def test_judge_report_against_sklearn_and_hand_values():
    y = np.array([1, 1, 0, 0, 0, 1, 0, 0])
    p = np.array([0.9, 0.4, 0.6, 0.1, 0.2, 0.8, 0.3, 0.45])
    rep = judge_report(y, p)
    v = (p >= 0.5).astype(int)   # [1,0,1,0,0,1,0,0]
    assert rep["accuracy"].value == pytest.approx(6 / 8)
    assert rep["tpr"].value == pytest.approx(2 / 3) and rep["tnr"].value == pytest.approx(4 / 5)
    assert rep["balanced_accuracy"].value == pytest.approx((2 / 3 + 4 / 5) / 2)
    assert rep["precision_correct"].value == pytest.approx(2 / 3)
    assert rep["auroc"].value == pytest.approx(roc_auc_score(y, p))
    assert rep["brier"].value == pytest.approx(brier_score_loss(y, p))
    assert rep["accept_rate"].value == pytest.approx(v.mean())
    # one class only: balanced accuracy and AUROC are undefined, not 0
    rep1 = judge_report(np.zeros(5, int), np.full(5, 0.1))
    assert np.isnan(rep1["auroc"].value) and np.isnan(rep1["balanced_accuracy"].value)
    assert rep1["accuracy"].value == 1.0   # the 'always incorrect' judge looks perfect on raw accuracy


def test_fast_measures_equal_sklearn_on_random_data():
    rng = np.random.default_rng(5)
    for _ in range(20):
        n = int(rng.integers(5, 60))
        y = rng.integers(0, 2, n)
        if len(set(y)) < 2:
            continue
        p = np.round(rng.random(n), 1)  # rounding makes ties, which AUROC must count as 1/2
        v = (p >= 0.5).astype(int)
        assert auroc(y, p) == pytest.approx(roc_auc_score(y, p))
        assert brier(y, p) == pytest.approx(brier_score_loss(y, p))
        assert balanced_accuracy(y, v) == pytest.approx(balanced_accuracy_score(y, v))


def test_one_fast_auroc_brier_spearman_equal_the_libraries():
    """One implementation each (metrics/judging.py, metrics/calibration.py), equal to sklearn / scipy."""
    from scipy import stats
    from sklearn.metrics import brier_score_loss, roc_auc_score

    from judgegap.metrics import calibration, judging

    rng = np.random.default_rng(3)
    for n in (5, 40, 300):
        y = (rng.random(n) < 0.4).astype(int)
        y[0], y[1] = 0, 1
        p = np.round(rng.random(n), 1)          # ties on purpose
        assert calibration.auroc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
        assert judging.auroc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
        assert calibration.brier(y, p) == pytest.approx(brier_score_loss(y, p), abs=1e-12)
        x = rng.integers(0, 4, n).astype(float)
        assert calibration.spearman(x, p) == pytest.approx(stats.spearmanr(x, p).statistic, abs=1e-12)
    assert np.isnan(calibration.spearman(np.ones(10), np.arange(10.0)))
