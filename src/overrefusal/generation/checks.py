"""Sanity checks that fail a generation stage when its output has degenerated.

Every stage ends with its checks (thresholds in the config's ``checks:`` section): moderators
answering one label for everything or echoing the template's example tag, outputs echoing a
template's placeholders or copying its few-shot examples, parse-failure and abstention rates,
categories left empty or tiny, and a benign pool that the moderators' own second pass calls toxic.
A failed check (with ``checks.action: fail``, the default) marks the stage failed: its records
and calls are kept (so a rerun costs nothing), the next stage refuses to start, and the command
exits 1 with the check's message. Results go to the stage report, the terminal and the datasheet.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from overrefusal.errors import RunError
from overrefusal.generation.config import ChecksConfig


@dataclass(frozen=True)
class Check:
    """One check's outcome: its name, whether it passed, and a one-line message."""

    name: str
    ok: bool
    message: str
    value: float | None = None
    threshold: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for stage reports and the datasheet."""
        return asdict(self)


def _pct(value: float) -> str:
    return f"{100 * value:.0f}%"


def share(
    name: str, bad: int, total: int, threshold: float, cfg: ChecksConfig, what: str, fix: str, *, gate: bool = True
) -> Check:
    """Fails when ``bad / total >= threshold`` over at least ``min_items`` items (any number when not ``gate``).

    ``what`` reads after the counts, e.g. ``"generator calls gave no readable item"``.
    """
    rate = bad / total if total else 0.0
    counted = f"{bad} of {total} {what}"
    if gate and total < cfg.min_items:
        return Check(name, True, f"{counted} (too few to judge, fewer than {cfg.min_items})", rate, threshold)
    if total and rate >= threshold:
        return Check(name, False, f"{counted} (threshold {_pct(threshold)}): {fix}", rate, threshold)
    return Check(name, True, counted, rate, threshold)


def category_yield(
    name: str, got: Mapping[str, int], asked: Mapping[str, int], cfg: ChecksConfig, what: str, fix: str
) -> Check:
    """Fails when a category got nothing, or less than ``min_yield`` of what was asked of it."""
    low = []
    for category, wanted in asked.items():
        have = got.get(category, 0)
        if wanted and (have == 0 or have < cfg.min_yield * wanted):
            low.append(f"{category} {have} of {wanted}")
    if low:
        return Check(name, False, f"{what} empty or tiny in {', '.join(low)}: {fix}", None, cfg.min_yield)
    return Check(name, True, f"{what}: every category above {_pct(cfg.min_yield)} of what was asked")


def constant_label(
    name: str, labels: Mapping[str, list[str]], cfg: ChecksConfig, fix: str, what: str = "prompts"
) -> list[Check]:
    """Per model (``labels``: model -> one label per item): fails when one label covers ``constant_label`` or more."""
    out = []
    for model, values in labels.items():
        if not values:
            continue
        top = max(set(values), key=values.count)
        out.append(
            share(
                name,
                values.count(top),
                len(values),
                cfg.constant_label,
                cfg,
                f"{what} got the same label ({top}) from {model}",
                fix,
            )
        )
    return out


class StageChecksFailed(RunError):
    """A stage's checks failed: its records are kept, the next stage will not run. Exit code 1."""

    def __init__(self, stage: str, report: dict[str, Any]) -> None:
        """Build the one-line message from the failed checks of ``report``."""
        failed = [c for c in report.get("checks", []) if not c["ok"]]
        first = f"{failed[0]['name']}: {failed[0]['message']}" if failed else "see the datasheet"
        more = f" (and {len(failed) - 1} more check(s) failed, see the datasheet)" if len(failed) > 1 else ""
        super().__init__(
            f"the {stage} stage failed its checks: {first}{more}; its calls are cached, so after the fix "
            f"`overrefusal generate {stage}` continues without repeating them (or set `checks: {{action: warn}}`)"
        )
        self.stage = stage
        self.report = report


def status(checks: list[Check], cfg: ChecksConfig) -> str:
    """``failed`` (a check failed and failing is on), ``warned`` (a check failed, warnings only) or ``ok``."""
    if all(c.ok for c in checks):
        return "ok"
    return "failed" if cfg.action == "fail" else "warned"
