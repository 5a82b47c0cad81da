"""``overrefusal report``: compare several runs in one self-contained HTML page."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from overrefusal.progress import Bar
from overrefusal.report.compare import write_report
from overrefusal.report.runs import load_runs


@click.command("report")
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("report.html"),
    show_default=True,
    help="Where to write the page (atomically).",
)
@click.option("--pair", nargs=2, type=str, default=None, help="Run McNemar only between these two models.")
@click.option(
    "--x-benchmark",
    default=None,
    help="Benign benchmark for the scatter's x axis (default: all of a model's benign prompts pooled).",
)
@click.option(
    "--include-incomplete",
    is_flag=True,
    help="Rank incomplete runs too (marked INCOMPLETE); by default they are left out and named.",
)
def report(
    runs: tuple[Path, ...],
    output: Path,
    pair: tuple[str, str] | None,
    x_benchmark: str | None,
    include_incomplete: bool,
) -> None:
    """Compare models: leaderboard, trade-off scatter, per-category bars, Spearman and McNemar tests.

    RUNS are run folders written by `overrefusal run` (runs/<id>/); runs of the same model on different
    benchmarks are grouped into one row.
    """
    folders = load_runs(list(runs))
    with Bar("reading runs", len(folders), enabled=sys.stderr.isatty()) as bar:
        comparison = write_report(
            folders,
            output,
            pair=pair,
            x_benchmark=x_benchmark,
            on_run=bar.advance,
            include_incomplete=include_incomplete,
        )
    for note in comparison.notes:
        if note.startswith("Left out:"):
            click.echo(note, err=True)
    models, n_runs = len(comparison.models), len(folders)
    for note in comparison.notes:
        click.echo(f"warning: {note}", err=True)
    click.echo(f"wrote {output} ({models} model{'s' * (models != 1)}, {n_runs} run{'s' * (n_runs != 1)})")
