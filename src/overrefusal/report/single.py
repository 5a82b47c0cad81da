"""The self-contained HTML report of one run: summary table, per-category chart, examples."""

from __future__ import annotations

from collections.abc import Sequence

from jinja2 import Environment, PackageLoader, select_autoescape

from overrefusal.metrics import Outcome, RateStat
from overrefusal.summary import Summary

_env = Environment(
    loader=PackageLoader("overrefusal.report", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def pct(value: float | None) -> str:
    """Format a rate as a percentage, or an em dash for no data."""
    return "\u2014" if value is None else f"{100 * value:.1f}%"


def interval(stat: RateStat) -> str:
    """Format a Wilson interval."""
    if stat.ci_low is None or stat.ci_high is None:
        return "\u2014"
    return f"{100 * stat.ci_low:.1f}\u2013{100 * stat.ci_high:.1f}"


_env.filters["pct"] = pct
_env.filters["interval"] = interval


def render_run_report(summary: Summary, outcomes: Sequence[Outcome], examples: int = 200) -> str:
    """Render the report; at most ``examples`` responses are listed (refusals of benign prompts first)."""

    def priority(o: Outcome) -> int:
        refused = o.verdict is not None and o.verdict.is_refusal
        if o.prompt.label == "benign" and refused:
            return 0
        if o.prompt.label == "toxic" and not refused:
            return 1
        return 2

    listed = sorted(outcomes, key=priority)[:examples]
    return _env.get_template("run.html.j2").render(s=summary, m=summary.metrics, outcomes=listed, total=len(outcomes))
