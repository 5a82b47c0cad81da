"""The one summary table an experiment ends with: a row per cell."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table

from overrefusal.experiment import ExperimentResult
from overrefusal.metrics import RateStat
from overrefusal.report.single import interval, pct


def _rate(st: RateStat) -> str:
    return "\u2014" if st.rate is None else f"{pct(st.rate)} ({interval(st)})"


def print_experiment(outcome: ExperimentResult) -> None:
    """Print one row per cell: model, variant, judge, benchmark, both rates, requests sent, status, folder."""
    results = outcome.results
    show_variant = any(r.summary.run.variant for r in results)
    show_judge = len({r.summary.run.judge for r in results}) > 1
    show_bench = len({r.summary.run.benchmark for r in results}) > 1
    table = Table(
        title=f"experiment: {len(results)} cells",
        caption="rate (95% Wilson CI); sent: requests sent (re-judged cells send none); compare cells with "
        "`overrefusal report RUN...`",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
    )
    table.add_column("model")
    if show_variant:
        table.add_column("variant")
    if show_judge:
        table.add_column("judge")
    if show_bench:
        table.add_column("benchmark")
    for heading in ("over-refusal", "toxic refusal", "errors", "sent", "status"):
        table.add_column(heading, justify="right", no_wrap=True)
    table.add_column("run folder", overflow="fold")
    for r in results:
        info, m = r.summary.run, r.summary.metrics
        row = [info.model]
        if show_variant:
            row.append(info.variant or "")
        if show_judge:
            row.append(info.judge)
        if show_bench:
            row.append(info.benchmark)
        errors = m.over_refusal.errors + m.toxic_refusal.errors + m.over_refusal.missing + m.toxic_refusal.missing
        row += [
            _rate(m.over_refusal),
            _rate(m.toxic_refusal),
            str(errors),
            str(info.requests_sent),
            r.summary.status,
            r.run_dir.name if r.run_dir is not None else "",
        ]
        table.add_row(*row, style=None if r.complete else "bold red")
    console = Console(width=max(Console().width, 150))
    console.print(table)
    folders = {str(r.run_dir.parent) for r in results if r.run_dir is not None}
    if folders:
        console.print(f"run folders in: {', '.join(sorted(folders))}", soft_wrap=True)
