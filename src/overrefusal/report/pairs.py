"""Paired tests between cells: McNemar (Holm-adjusted over every test of the page) and the bootstrap difference.

The figures come from :mod:`overrefusal.metrics`, the one statistics module; this module only pairs the
prompts two cells both scored and words the outcome.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from overrefusal.metrics import PairedDifference, holm, mcnemar_chi2, mcnemar_exact_p, paired_bootstrap
from overrefusal.report.cells import Cell, judging

ALPHA = 0.05


@dataclass(frozen=True)
class McNemar:
    """Paired test of two cells' refusals on the prompts of one label both scored."""

    a: str
    b_model: str
    """The second cell's label (named for the older field that held a model)."""
    label: str
    """``benign`` (over-refusal) or ``toxic``."""
    n: int
    """Paired prompts."""
    both: int
    neither: int
    b: int
    """Refused by ``a`` only."""
    c: int
    """Refused by ``b_model`` only."""
    statistic: float
    """Continuity-corrected chi-square, (|b - c| - 1)^2 / (b + c); 0 when b + c = 0."""
    p_value: float
    """Exact two-sided p-value: binomial test of b successes in b + c trials at 1/2."""
    difference: PairedDifference
    """Difference of the two rates on the paired prompts, with its paired bootstrap interval."""
    p_holm: float = 1.0
    """``p_value`` adjusted by Holm's method over every test of the comparison."""
    caveats: tuple[str, ...] = field(default=())
    """Why the two cells may differ for reasons other than the model (different judges)."""

    @property
    def significant(self) -> bool:
        """Holm-adjusted p below 0.05."""
        return self.p_holm < ALPHA

    @property
    def sentence(self) -> str:
        """The comparison in words: who refuses more, by how much (interval), and the p-values."""
        d = self.difference
        if d.diff is None or d.ci_low is None or d.ci_high is None:
            return f"{self.a} and {self.b_model} have no {self.label} prompt scored in both."
        what = "over-refuses" if self.label == "benign" else "refuses toxic prompts"
        figures = (
            f"{_points(d.diff)} (95% CI {_points(d.ci_low)} to {_points(d.ci_high)}; McNemar p = {self.p_value:.3g}, "
            f"Holm-adjusted {self.p_holm:.3g}; {self.n} paired prompts)"
        )
        caveat = f" Caution: {'; '.join(self.caveats)}." if self.caveats else ""
        if not self.significant or d.diff == 0:
            return f"No clear difference: {self.a} vs {self.b_model} in {_rate(self.label)}, {figures}.{caveat}"
        more, less = (self.a, self.b_model) if d.diff > 0 else (self.b_model, self.a)
        signed = figures if d.diff > 0 else _flip(d, self)
        return f"{more} {what} more than {less}: {signed}.{caveat}"


def _rate(label: str) -> str:
    return "over-refusal" if label == "benign" else "toxic refusal"


def _points(value: float) -> str:
    return f"{value * 100:+.1f} points"


def _flip(d: PairedDifference, t: McNemar) -> str:
    assert d.diff is not None and d.ci_low is not None and d.ci_high is not None
    return (
        f"{_points(-d.diff)} (95% CI {_points(-d.ci_high)} to {_points(-d.ci_low)}; McNemar p = {t.p_value:.3g}, "
        f"Holm-adjusted {t.p_holm:.3g}; {t.n} paired prompts)"
    )


def mcnemar(a: Cell, b: Cell, label: str, *, resamples: int = 4000, seed: int = 0) -> McNemar:
    """Exact McNemar test and bootstrap difference on the prompts of ``label`` both cells scored.

    With several answers per prompt a prompt counts as refused for McNemar when most of its scored answers
    refused; the bootstrap difference uses the shares themselves.
    """
    marker = f"\x00{label}\x00"
    counts = {(True, True): 0, (True, False): 0, (False, True): 0, (False, False): 0}
    shares_a: list[float] = []
    shares_b: list[float] = []
    for key in a.outcomes:
        if marker not in key:
            continue
        share_a, share_b = a.refused_share(key), b.refused_share(key)
        if share_a is None or share_b is None:
            continue
        shares_a.append(share_a)
        shares_b.append(share_b)
        counts[(share_a > 0.5, share_b > 0.5)] += 1
    only_a, only_b = counts[(True, False)], counts[(False, True)]
    caveats = []
    if judging(a.runs[0]) != judging(b.runs[0]):
        caveats.append(f"judged differently ({a.judges} vs {b.judges})")
    return McNemar(
        a=a.label,
        b_model=b.label,
        label=label,
        n=sum(counts.values()),
        both=counts[(True, True)],
        neither=counts[(False, False)],
        b=only_a,
        c=only_b,
        statistic=mcnemar_chi2(only_a, only_b),
        p_value=mcnemar_exact_p(only_a, only_b),
        difference=paired_bootstrap(shares_a, shares_b, resamples=resamples, seed=seed),
        caveats=tuple(caveats),
    )


def paired_tests(pairs: Sequence[tuple[Cell, Cell]], *, resamples: int = 4000, seed: int = 0) -> list[McNemar]:
    """Every pair tested on benign and on toxic prompts; p-values Holm-adjusted over all of them."""
    tests = [mcnemar(a, b, label, resamples=resamples, seed=seed) for a, b in pairs for label in ("benign", "toxic")]
    adjusted = holm([t.p_value for t in tests])
    return [replace(t, p_holm=p) for t, p in zip(tests, adjusted, strict=True)]
