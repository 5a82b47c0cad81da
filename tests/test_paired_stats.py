"""Paired comparisons of two cells: the hand-written figures against scipy and statsmodels."""

from __future__ import annotations

import random

import numpy as np
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar
from statsmodels.stats.multitest import multipletests

from overrefusal.metrics import holm, mcnemar_chi2, mcnemar_exact_p, paired_bootstrap


@pytest.mark.parametrize(("b", "c"), [(0, 0), (0, 1), (1, 0), (3, 9), (9, 3), (7, 7), (12, 30), (40, 17), (0, 25)])
def test_mcnemar_matches_statsmodels_and_scipy(b: int, c: int) -> None:
    table = [[5, b], [c, 11]]
    exact = sm_mcnemar(table, exact=True)
    assert mcnemar_exact_p(b, c) == pytest.approx(exact.pvalue, rel=1e-9, abs=1e-15)
    if b + c:
        assert mcnemar_exact_p(b, c) == pytest.approx(scipy_stats.binomtest(b, b + c, 0.5).pvalue, rel=1e-9)
        chi2 = sm_mcnemar(table, exact=False, correction=True)
        assert mcnemar_chi2(b, c) == pytest.approx(chi2.statistic, rel=1e-12)


def test_mcnemar_exact_stays_accurate_for_large_counts() -> None:
    # far beyond what summing binomial coefficients in floating point could reach
    assert mcnemar_exact_p(20_000, 20_450) == pytest.approx(scipy_stats.binomtest(20_000, 40_450).pvalue, rel=1e-6)
    assert mcnemar_exact_p(100, 400) == pytest.approx(scipy_stats.binomtest(100, 500).pvalue, rel=1e-6)


def test_holm_matches_statsmodels() -> None:
    rng = random.Random(4)
    for size in (1, 2, 5, 12):
        pvalues = [rng.random() ** 3 for _ in range(size)]
        pvalues[0] = pvalues[-1]  # ties keep their order
        expected = multipletests(pvalues, method="holm")[1]
        assert holm(pvalues) == pytest.approx(list(expected), rel=1e-12)
    assert holm([]) == []
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def _pairs(n: int, p_a: float, p_b: float, seed: int) -> tuple[list[float], list[float]]:
    rng = random.Random(seed)
    a = [float(rng.random() < p_a) for _ in range(n)]
    b = [float(x if rng.random() < 0.6 else rng.random() < p_b) for x in a]  # correlated, as paired cells are
    return a, b


def test_paired_bootstrap_matches_scipy_bootstrap() -> None:
    a, b = _pairs(300, 0.4, 0.25, seed=1)
    ours = paired_bootstrap(a, b, resamples=20_000, seed=3)
    ref = scipy_stats.bootstrap(
        (np.array(a), np.array(b)),
        lambda x, y, axis=-1: np.mean(x, axis=axis) - np.mean(y, axis=axis),
        paired=True,
        vectorized=True,
        n_resamples=20_000,
        method="percentile",
        random_state=np.random.default_rng(5),
    )
    assert ours.n == 300 and ours.diff == pytest.approx(np.mean(a) - np.mean(b))
    assert ours.ci_low == pytest.approx(ref.confidence_interval.low, abs=0.006)
    assert ours.ci_high == pytest.approx(ref.confidence_interval.high, abs=0.006)


def test_paired_bootstrap_matches_the_normal_interval_of_paired_proportions() -> None:
    a, b = _pairs(4000, 0.3, 0.2, seed=2)
    ours = paired_bootstrap(a, b, resamples=8000, seed=0)
    n = len(a)
    only_a = sum(1 for x, y in zip(a, b, strict=True) if x and not y)
    only_b = sum(1 for x, y in zip(a, b, strict=True) if y and not x)
    diff = (only_a - only_b) / n
    se = ((only_a + only_b) / n - diff**2) ** 0.5 / n**0.5
    assert ours.diff == pytest.approx(diff)
    assert ours.ci_low == pytest.approx(diff - 1.959964 * se, abs=0.003)
    assert ours.ci_high == pytest.approx(diff + 1.959964 * se, abs=0.003)


def test_paired_bootstrap_of_shares_and_edge_cases() -> None:
    # several answers per prompt: the shares themselves are resampled
    a = [1.0, 0.6, 0.2, 0.8, 0.4] * 40
    b = [0.6, 0.6, 0.0, 0.8, 0.2] * 40
    ours = paired_bootstrap(a, b, resamples=5000, seed=1)
    assert ours.diff == pytest.approx(0.16) and ours.ci_low is not None and ours.ci_high is not None
    assert 0 < ours.ci_low < 0.16 < ours.ci_high
    assert paired_bootstrap(a, b, resamples=5000, seed=1) == ours  # seeded: reproducible
    same = paired_bootstrap([1.0, 0.0, 1.0], [1.0, 0.0, 1.0])
    assert same.diff == same.ci_low == same.ci_high == 0.0
    empty = paired_bootstrap([], [])
    assert empty.n == 0 and empty.diff is None and empty.ci_low is None
    with pytest.raises(ValueError, match="same length"):
        paired_bootstrap([1.0], [])


def test_paired_bootstrap_of_one_sided_differences_is_the_binomial_percentile_interval() -> None:
    # b refuses nothing, a refuses 30 of 100: a resample's difference is Binomial(100, 0.3) / 100 exactly
    a, b = [1.0] * 30 + [0.0] * 70, [0.0] * 100
    for level in (0.95, 0.8):
        ours = paired_bootstrap(a, b, resamples=40_000, level=level)
        alpha = (1 - level) / 2
        expected = (scipy_stats.binom.ppf(alpha, 100, 0.3) / 100, scipy_stats.binom.ppf(1 - alpha, 100, 0.3) / 100)
        assert (ours.ci_low, ours.ci_high) == pytest.approx(expected, abs=1e-9), level
        assert (ours.rate_a, ours.rate_b, ours.diff, ours.n) == (0.3, 0.0, 0.3, 100)


def test_paired_bootstrap_defaults_and_its_one_line_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from overrefusal.errors import MissingDependencyError

    rng = random.Random(9)  # shares of several answers: many distinct differences
    a, b = [rng.randint(0, 5) / 5 for _ in range(300)], [rng.randint(0, 5) / 5 for _ in range(300)]
    default = paired_bootstrap(a, b)
    assert default == paired_bootstrap(a, b, resamples=4000, level=0.95, seed=0)
    assert default.resamples == 4000 and paired_bootstrap([], []).resamples == 4000
    assert default != paired_bootstrap(a, b, seed=1)  # (the seed matters)
    with pytest.raises(ValueError, match="^paired samples must have the same length$"):
        paired_bootstrap([1.0, 0.0], [1.0])
    monkeypatch.setitem(sys.modules, "numpy", None)  # numpy not installed
    with pytest.raises(MissingDependencyError) as missing:
        paired_bootstrap([1.0], [0.0])
    assert (
        str(missing.value)
        == "paired bootstrap intervals needs numpy: install it with `pip install 'overrefusal[report]'`"
    )


def test_mcnemar_edges() -> None:
    for only_a, only_b in ((-1, 3), (3, -1)):
        with pytest.raises(ValueError, match="^discordant counts must be non-negative$"):
            mcnemar_exact_p(only_a, only_b)
    assert mcnemar_chi2(0, 0) == 0.0
    assert mcnemar_exact_p(2, 4) == pytest.approx(scipy_stats.binomtest(2, 6).pvalue, rel=1e-12)  # 0.6875
    # one more pair one way than the other: p is 1, never a rounding hair above it
    for k in range(40):
        for p in (mcnemar_exact_p(k, k + 1), mcnemar_exact_p(k + 1, k)):
            assert p == pytest.approx(1.0, rel=1e-12) and p <= 1.0, k
