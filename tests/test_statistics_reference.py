"""Every published figure checked against a reference implementation (scipy, statsmodels, scikit-learn).

McNemar, Holm and the paired bootstrap are checked in ``test_paired_stats.py``.

Asymmetric and extreme values on purpose: a Wilson interval centred on p instead of the Wilson
centre agrees with the reference at 5/10 and nowhere else.
"""

from __future__ import annotations

import itertools

import pytest
from scipy import stats
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.proportion import proportion_confint

from overrefusal.judges.agreement import agreement
from overrefusal.metrics import Z95, clustered_interval, wilson_interval
from overrefusal.report.cells import Cell
from overrefusal.report.compare import spearman

WILSON_CASES = [(0, 1), (1, 1), (0, 10), (1, 10), (9, 10), (10, 10), (3, 7), (1, 1000), (999, 1000), (17, 40)]


@pytest.mark.parametrize(("k", "n"), WILSON_CASES)
def test_wilson_is_statsmodels_wilson(k: int, n: int) -> None:
    low, high = proportion_confint(k, n, alpha=0.05, method="wilson")
    assert wilson_interval(k, n) == pytest.approx((low, high), abs=1e-12)


def test_wilson_of_one_in_ten_is_asymmetric() -> None:
    low, high = wilson_interval(1, 10)
    assert (round(low, 4), round(high, 4)) == (0.0179, 0.4042)  # the published 1/10: 1.8-40.4%


def test_wilson_at_other_confidence_levels() -> None:
    for level in (0.8, 0.9, 0.99):
        z = stats.norm.ppf(0.5 + level / 2)
        assert wilson_interval(3, 11, z) == pytest.approx(proportion_confint(3, 11, 1 - level, "wilson"), abs=1e-12)
    assert pytest.approx(stats.norm.ppf(0.975), abs=1e-15) == Z95


def test_wilson_rejects_impossible_counts_and_is_uninformative_on_nothing() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    for k, n in ((-1, 5), (6, 5)):
        with pytest.raises(ValueError, match="outside"):
            wilson_interval(k, n)


def test_clustered_interval_is_wilson_with_one_answer_per_prompt() -> None:
    for k, n in WILSON_CASES:
        assert clustered_interval(n, k, k, n) == pytest.approx(wilson_interval(k, n), abs=1e-12)
    # every prompt's answers alike: as many independent observations as prompts, not answers
    assert clustered_interval(10, 3.0, 3.0, 50) == pytest.approx(wilson_interval(3, 10), abs=1e-12)


def test_spearman_is_scipys() -> None:
    from overrefusal.metrics import RateStat

    def stat(rate: float) -> RateStat:
        r = round(rate * 100)
        return RateStat(
            total=100, scored=100, refused=r, full_refusal=r, partial_refusal=0, compliance=100 - r,
            unscored=0, errors=0, rate=rate, ci_low=0.0, ci_high=1.0,
        )  # fmt: skip

    xs, ys = [0.10, 0.30, 0.20, 0.50, 0.45], [0.60, 0.90, 0.70, 0.85, 0.95]
    models = []
    for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
        agg = Cell(model=f"m{i}", variant=None, judge="keywords", runs=[])
        agg.over_refusal, agg.toxic_refusal = stat(x), stat(y)
        models.append(agg)
    result = spearman(models, None)
    reference = stats.spearmanr(xs, ys)
    assert result.rho == pytest.approx(reference.statistic, abs=1e-12)
    assert result.p_value == pytest.approx(reference.pvalue, abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kappa_and_accuracies_are_scikit_learns(seed: int) -> None:
    import random

    rng = random.Random(seed)
    labels = ["full_refusal", "partial_refusal", "compliance"]
    gold = [rng.choice(labels) for _ in range(200)]
    predicted = [g if rng.random() < 0.7 else rng.choice([*labels, "unscored"]) for g in gold]
    result = agreement(gold, predicted)  # type: ignore[arg-type]
    scored = [(g, p) for g, p in zip(gold, predicted, strict=True) if p != "unscored"]
    binary_gold = [g != "compliance" for g, _ in scored]
    binary_pred = [p != "compliance" for _, p in scored]
    assert result.kappa == pytest.approx(cohen_kappa_score(binary_gold, binary_pred), abs=1e-12)
    agree = sum(g == p for g, p in zip(binary_gold, binary_pred, strict=True))
    assert result.binary_accuracy == pytest.approx(agree / len(scored))
    assert result.three_class_accuracy == pytest.approx(sum(g == p for g, p in scored) / len(scored))
    assert result.unscored_rate == pytest.approx(predicted.count("unscored") / len(gold))


def test_kappa_edge_cases() -> None:
    assert agreement(["compliance"] * 3, ["compliance"] * 3).kappa == 1.0  # type: ignore[arg-type]
    assert agreement([], []).kappa is None
    both = list(itertools.islice(itertools.cycle(["compliance", "full_refusal"]), 10))
    assert agreement(both, both).kappa == pytest.approx(cohen_kappa_score(both, both))  # type: ignore[arg-type]
