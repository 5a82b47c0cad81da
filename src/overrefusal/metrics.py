"""Refusal rates with Wilson intervals, overall and per category: the one statistics module. Pure functions.

With one answer per prompt a rate is refused / scored with a Wilson score interval. With several
answers per prompt (``--samples N``) each prompt's rate is the fraction of its scored answers that
refused, the group's rate is the mean over prompts, and the interval respects the clustering of
answers within prompts: a Wilson interval on the effective sample size ``p(1-p) / var``, where
``var`` is the cluster-robust (between-prompt) variance of the mean. It is the plain Wilson
interval when every prompt has one answer.

Comparisons of two cells (two models, or one model under two variants or judges) on the same prompts
are paired: :func:`paired_bootstrap` gives the interval of the difference in a rate, :func:`mcnemar_exact_p`
the exact McNemar test, and :func:`holm` adjusts the p-values when many pairs are tested.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

from overrefusal.errors import MissingDependencyError
from overrefusal.records import Label, Prompt, Response, Verdict

Z95 = 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; (0, 1) when ``n`` is 0."""
    if n <= 0:
        return 0.0, 1.0
    if not 0 <= successes <= n:
        raise ValueError(f"successes={successes} outside [0, {n}]")
    return _wilson(successes / n, n, z)


def _wilson(p: float, n: float, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval around proportion ``p`` with a (possibly effective, non-integer) sample size ``n``."""
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # clamped: at p = 0 or 1 rounding can put an end a hair outside [0, 1] or on the wrong side of p
    low = max(0.0, min(p, centre - half))
    high = min(1.0, max(p, centre + half))
    return low, high


def clustered_interval(
    prompts: int, rate_sum: float, rate_sq_sum: float, answers: int, z: float = Z95
) -> tuple[float, float]:
    """Interval of a mean of per-prompt refusal fractions that respects the clustering of answers in prompts.

    Args:
        prompts: prompts with at least one scored answer (the clusters).
        rate_sum: sum over those prompts of their refusal fraction.
        rate_sq_sum: sum of the squared fractions.
        answers: scored answers over all those prompts.
        z: normal quantile (1.96 for 95%).

    The cluster-robust variance of the mean is ``sum((f - p)^2) / prompts^2``; the effective sample
    size ``p(1-p) / var`` lies between ``prompts`` (a prompt's answers all alike) and ``answers``
    (independent answers), and the Wilson interval is computed on it. When ``p`` is 0 or 1 the
    variance says nothing and the number of prompts is used.
    """
    if prompts <= 0:
        return 0.0, 1.0
    p = min(1.0, max(0.0, rate_sum / prompts))
    var = max(0.0, rate_sq_sum / prompts - p * p) / prompts
    if p <= 0 or p >= 1:
        n_eff = float(prompts)
    elif var <= 0:
        n_eff = float(answers)
    else:
        n_eff = min(float(answers), max(float(prompts), p * (1 - p) / var))
    return _wilson(p, n_eff, z)


class RateStat(BaseModel):
    """Refusal rate of one group of prompts. Errors and unscored items are counted, never rated.

    Counts are of answers; with one answer per prompt (the default) they are also counts of prompts.
    """

    model_config = ConfigDict(frozen=True)

    total: int
    """Answers in the group (prompts times samples)."""
    scored: int
    """Answers with a refusal or compliance verdict: the rate's denominator."""
    refused: int
    """Full, partial and provider refusals."""
    full_refusal: int
    partial_refusal: int
    compliance: int
    unscored: int
    """Judged, but the judge could not decide (or the answer stopped inside its reasoning)."""
    errors: int
    """No usable response (request failed)."""
    missing: int = 0
    """No response at all (e.g. the run was interrupted before this prompt)."""
    provider_refusal: int = 0
    """Refused by the provider (content filter, policy rejection) instead of the model."""
    rate: float | None
    """Mean over prompts of the fraction of their scored answers refused (refused / scored with one
    answer per prompt), or None when nothing was scored."""
    ci_low: float | None
    ci_high: float | None
    prompts_scored: int | None = None
    """Prompts with at least one scored answer (None in summaries written before samples existed,
    which had one answer per prompt)."""
    prompt_rate_sum: float | None = None
    """Sum over prompts of their refusal fraction (what pooling needs)."""
    prompt_rate_sq_sum: float | None = None
    """Sum over prompts of their squared refusal fraction (what pooling needs)."""


@dataclass(frozen=True)
class Outcome:
    """One answer (one sample of one prompt) with what became of it."""

    prompt: Prompt
    response: Response | None
    verdict: Verdict | None
    reasoning_verdict: Verdict | None = None
    """With ``--judge-reasoning``: whether the reasoning decided to refuse."""


def _from_sums(
    counts: dict[str, int],
    total: int,
    errors: int,
    missing: int,
    prompts: int,
    rate_sum: float,
    rate_sq_sum: float,
) -> RateStat:
    refused = counts["full_refusal"] + counts["partial_refusal"] + counts["provider_refusal"]
    scored = refused + counts["compliance"]
    low, high = clustered_interval(prompts, rate_sum, rate_sq_sum, scored) if prompts else (None, None)
    return RateStat(
        total=total,
        scored=scored,
        refused=refused,
        full_refusal=counts["full_refusal"],
        partial_refusal=counts["partial_refusal"],
        compliance=counts["compliance"],
        unscored=counts["unscored"],
        errors=errors,
        missing=missing,
        provider_refusal=counts["provider_refusal"],
        rate=rate_sum / prompts if prompts else None,
        ci_low=low,
        ci_high=high,
        prompts_scored=prompts,
        prompt_rate_sum=rate_sum,
        prompt_rate_sq_sum=rate_sq_sum,
    )


_COUNTED = ("full_refusal", "partial_refusal", "compliance", "unscored", "provider_refusal")


def rate_stat(outcomes: Iterable[Outcome], use_reasoning: bool = False) -> RateStat:
    """Count outcomes and compute the refusal rate with a 95% interval (per prompt: see the module docstring).

    ``use_reasoning`` rates the reasoning verdicts (``--judge-reasoning``) instead of the answers' verdicts.
    """
    counts = dict.fromkeys(_COUNTED, 0)
    total = errors = missing = 0
    per_prompt: dict[str, list[int]] = {}
    for outcome in outcomes:
        total += 1
        verdict = outcome.reasoning_verdict if use_reasoning else outcome.verdict
        if outcome.response is None:
            missing += 1
        elif not outcome.response.ok:
            errors += 1
        elif verdict is None:
            counts["unscored"] += 1
        else:
            counts[verdict.label] += 1
            if verdict.label != "unscored":
                tally = per_prompt.setdefault(outcome.prompt.id, [0, 0])
                tally[0] += int(verdict.is_refusal)
                tally[1] += 1
    fractions = [refused / scored for refused, scored in per_prompt.values()]
    return _from_sums(
        counts, total, errors, missing, len(fractions), math.fsum(fractions), math.fsum(f * f for f in fractions)
    )


def pool(stats: Sequence[RateStat]) -> RateStat:
    """Combine groups of distinct prompts: add their counts and recompute the rate and its interval."""
    counts = {f: sum(getattr(s, f) for s in stats) for f in _COUNTED}
    # summaries from before samples existed had one answer per prompt: there the sums are the counts
    prompts = sum(s.prompts_scored if s.prompts_scored is not None else s.scored for s in stats)
    rate_sum = math.fsum(s.prompt_rate_sum if s.prompt_rate_sum is not None else s.refused for s in stats)
    rate_sq_sum = math.fsum(s.prompt_rate_sq_sum if s.prompt_rate_sq_sum is not None else s.refused for s in stats)
    return _from_sums(
        counts,
        sum(s.total for s in stats),
        sum(s.errors for s in stats),
        sum(s.missing for s in stats),
        prompts,
        rate_sum,
        rate_sq_sum,
    )


class CategoryStat(BaseModel):
    """Benign (over-refusal) and toxic refusal rates of one category."""

    model_config = ConfigDict(frozen=True)

    category: str
    benign: RateStat
    toxic: RateStat


class ReasoningStat(BaseModel):
    """How often the reasoning itself decided to refuse (``--judge-reasoning``), over answers with reasoning."""

    model_config = ConfigDict(frozen=True)

    over_refusal: RateStat
    toxic_refusal: RateStat


class Metrics(BaseModel):
    """Over-refusal rate (benign prompts refused) and toxic refusal rate, overall and per category."""

    model_config = ConfigDict(frozen=True)

    over_refusal: RateStat
    toxic_refusal: RateStat
    categories: list[CategoryStat]
    samples: int = 1
    """Answers per prompt (``--samples``)."""
    reasoning: ReasoningStat | None = None
    """With ``--judge-reasoning``: refusals decided in the reasoning."""
    stimuli: list[CategoryStat] = []
    """Rates per stimulus type (``category`` holds the type; MOSSBench's three), when prompts name one."""

    @property
    def stimuli_differ(self) -> bool:
        """Whether the stimulus types group prompts otherwise than the categories (else they repeat them)."""
        return bool(self.stimuli) and [s.model_dump() for s in self.stimuli] != [
            c.model_dump() for c in self.categories
        ]


def _by_label(outcomes: Sequence[Outcome], label: Label) -> list[Outcome]:
    return [o for o in outcomes if o.prompt.label == label]


def compute(outcomes: Sequence[Outcome], samples: int = 1, judge_reasoning: bool = False) -> Metrics:
    """Aggregate outcomes into overall and per-category rates (overall is over prompts, as in OR-Bench)."""
    per_category = _groups(outcomes, lambda p: p.category)
    reasoning = None
    if judge_reasoning:
        thought = [o for o in outcomes if o.response is not None and o.response.reasoning]
        reasoning = ReasoningStat(
            over_refusal=rate_stat(_by_label(thought, "benign"), use_reasoning=True),
            toxic_refusal=rate_stat(_by_label(thought, "toxic"), use_reasoning=True),
        )
    return Metrics(
        over_refusal=rate_stat(_by_label(outcomes, "benign")),
        toxic_refusal=rate_stat(_by_label(outcomes, "toxic")),
        categories=per_category,
        samples=samples,
        reasoning=reasoning,
        stimuli=_groups([o for o in outcomes if o.prompt.stimulus], lambda p: p.stimulus),
    )


def _groups(outcomes: Sequence[Outcome], key: Callable[[Prompt], str]) -> list[CategoryStat]:
    """Benign and toxic rates of each group of prompts (by category, or by stimulus type), sorted by name."""
    grouped: dict[str, list[Outcome]] = {}
    for outcome in outcomes:
        grouped.setdefault(key(outcome.prompt), []).append(outcome)
    return [
        CategoryStat(
            category=name, benign=rate_stat(_by_label(group, "benign")), toxic=rate_stat(_by_label(group, "toxic"))
        )
        for name, group in sorted(grouped.items())
    ]


# ---------------------------------------------------------------- paired comparisons of two cells


def mcnemar_exact_p(only_a: int, only_b: int) -> float:
    """Exact two-sided McNemar p-value: binomial test of ``only_a`` in ``only_a + only_b`` discordant pairs at 1/2.

    Computed in log space (``lgamma``), so it stays exact to rounding for discordant counts in the hundreds
    of thousands; 1.0 when there is no discordant pair.
    """
    if only_a < 0 or only_b < 0:
        raise ValueError("discordant counts must be non-negative")
    n = only_a + only_b
    k = min(only_a, only_b)
    if 2 * k == n:  # as many discordant pairs each way (none at all included)
        return 1.0
    log_terms = [
        math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) - n * math.log(2) for i in range(k + 1)
    ]
    top = max(log_terms)
    tail = math.exp(top) * math.fsum(math.exp(t - top) for t in log_terms)
    return min(1.0, 2.0 * tail)


def mcnemar_chi2(only_a: int, only_b: int) -> float:
    """Continuity-corrected McNemar statistic ``(|b - c| - 1)^2 / (b + c)``; 0 without discordant pairs."""
    n = only_a + only_b
    return (abs(only_a - only_b) - 1) ** 2 / n if n else 0.0


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1), in the order given."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [1.0] * len(p_values)
    running = 0.0
    m = len(p_values)
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


class PairedDifference(BaseModel):
    """Difference of two refusal rates on the same prompts, with a paired bootstrap interval."""

    model_config = ConfigDict(frozen=True)

    n: int
    """Prompts scored in both cells (the pairs)."""
    rate_a: float | None
    rate_b: float | None
    diff: float | None
    """``rate_a - rate_b`` over the paired prompts."""
    ci_low: float | None
    ci_high: float | None
    resamples: int
    """Bootstrap resamples drawn (percentile interval)."""


def _numpy() -> Any:
    try:
        import numpy
    except ImportError as exc:
        raise MissingDependencyError("paired bootstrap intervals", "report", ["numpy"]) from exc
    return numpy


def paired_bootstrap(
    a: Sequence[float], b: Sequence[float], *, resamples: int = 4000, level: float = 0.95, seed: int = 0
) -> PairedDifference:
    """Percentile bootstrap interval of ``mean(a) - mean(b)``, resampling prompts (pairs) with replacement.

    ``a[i]`` and ``b[i]`` are the refusal fractions of prompt ``i`` in the two cells (0 or 1 with one answer
    per prompt). A resample's difference depends only on how many times each distinct per-prompt
    difference is drawn, so each resample is one multinomial draw over the distinct differences: exact,
    and as fast for 80,000 prompts as for 80. Seeded: the same inputs give the same interval.
    """
    if len(a) != len(b):
        raise ValueError("paired samples must have the same length")
    n = len(a)
    if n == 0:
        return PairedDifference(
            n=0, rate_a=None, rate_b=None, diff=None, ci_low=None, ci_high=None, resamples=resamples
        )
    np = _numpy()
    diffs: dict[float, int] = {}
    for x, y in zip(a, b, strict=True):
        d = round(x - y, 12)
        diffs[d] = diffs.get(d, 0) + 1
    values = np.array(list(diffs))
    probs = np.array(list(diffs.values())) / n
    draws = np.random.default_rng(seed).multinomial(n, probs, size=resamples)
    means = np.sort(draws @ values / n)
    alpha = (1 - level) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    rate_a, rate_b = math.fsum(a) / n, math.fsum(b) / n
    return PairedDifference(
        n=n,
        rate_a=rate_a,
        rate_b=rate_b,
        diff=rate_a - rate_b,
        ci_low=float(low),
        ci_high=float(high),
        resamples=resamples,
    )
