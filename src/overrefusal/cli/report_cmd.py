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
@click.option(
    "--pair",
    nargs=2,
    type=str,
    default=None,
    help="Test only these two cells (a cell's name, its model, or a unique part of its name, e.g. qwen smollm).",
)
@click.option(
    "--reference",
    type=click.Choice(["orbench-2024"]),
    default=None,
    help="Overlay published points on the scatter (orbench-2024: the 32 models of the OR-Bench paper).",
)
@click.option(
    "--resamples",
    type=click.IntRange(min=100),
    default=4000,
    show_default=True,
    help="Bootstrap resamples for the intervals of paired differences.",
)
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
    reference: str | None,
    resamples: int,
) -> None:
    """Compare cells: leaderboard, trade-off scatter, per-category bars, paired differences and McNemar tests.

    RUNS are run folders written by `overrefusal run` (runs/<id>/). Runs are grouped into cells by
    (model, variant, judge); a cell's runs on different benchmarks are pooled into one row, and of two runs
    of one cell on one benchmark the newer is shown.
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
            reference=reference,
            resamples=resamples,
        )
    for note in comparison.notes:
        if note.startswith("Left out:"):
            click.echo(note, err=True)
    cells, n_runs = len(comparison.models), len(folders)
    for note in comparison.notes:
        if not note.startswith("Left out:"):
            click.echo(f"warning: {note}", err=True)
    for test in comparison.mcnemar:
        if test.significant:
            click.echo(test.sentence)
    click.echo(f"wrote {output} ({cells} cell{'s' * (cells != 1)}, {n_runs} run{'s' * (n_runs != 1)})")
