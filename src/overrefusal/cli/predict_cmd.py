"""``overrefusal predict``: train a prompt-level refusal predictor on run verdicts, and rank a benchmark's prompts."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import click
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from overrefusal.atomic import write_atomic
from overrefusal.benchmarks import ColumnMap, load_benchmark
from overrefusal.predictor import Predictor, train
from overrefusal.predictor_runs import examples_from_run


@click.group()
def predict() -> None:
    """Predict from the prompt alone whether a model will refuse it (MiniLM embedding + logistic regression)."""


@predict.command(name="train")
@click.argument("runs", nargs=-1, required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--output",
    "-o",
    default="refusal-predictor.json",
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the predictor.",
)
def train_cmd(runs: tuple[Path, ...], output: Path) -> None:
    """Fit the predictor on the judged prompts of RUNS (run folders written by `overrefusal run`)."""
    examples = [e for run in runs for e in examples_from_run(run)]
    predictor = train(examples)
    predictor.save(output)
    meta = predictor.meta
    cv = f"{meta['cv_auc']:.3f}" if meta["cv_auc"] is not None else "n/a (too few examples)"
    click.echo(
        f"trained on {meta['examples']} answers to {meta['prompts']} prompts ({meta['refused']} refused) from "
        f"{len(runs)} run(s) of {', '.join(meta['models'])}; cross-validated AUC {cv} (C={meta['C']})"
    )
    click.echo(f"predictor: {output}")


@predict.command(name="score")
@click.argument("benchmark")
@click.option(
    "--predictor",
    "-p",
    "predictor_path",
    default="refusal-predictor.json",
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="A predictor written by `predict train`.",
)
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write all scores to this CSV.")
@click.option("--top", default=20, show_default=True, type=click.IntRange(min=0), help="Prompts shown.")
@click.option("--prompt-column", default=None, help="Column holding the prompt text.")
@click.option("--category-column", default=None, help="Column holding the category.")
def score_cmd(
    benchmark: str,
    predictor_path: Path,
    output: Path | None,
    top: int,
    prompt_column: str | None,
    category_column: str | None,
) -> None:
    """Rank the prompts of BENCHMARK by predicted refusal, most likely refused first."""
    predictor = Predictor.load(predictor_path)
    columns = ColumnMap(prompt=prompt_column, category=category_column, default_label="benign")
    bench = load_benchmark(benchmark, columns)
    scores = predictor.score([p.text for p in bench.prompts])
    ranked = sorted(zip(bench.prompts, scores, strict=True), key=lambda pair: -pair[1])
    if output is not None:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["prompt", "category", "label", "refusal_score"])
        writer.writerows([p.text, p.category, p.label, f"{s:.4f}"] for p, s in ranked)
        write_atomic(output, buffer.getvalue())
    table = Table(title=f"{bench.name}: predicted refusal, highest first", title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("score", justify="right")
    table.add_column("category")
    table.add_column("prompt", overflow="fold")
    for prompt, value in ranked[:top]:
        table.add_row(f"{value:.3f}", escape(prompt.category), escape(prompt.text))
    Console().print(table)
    mean = sum(scores) / len(scores) if scores else 0.0
    click.echo(
        f"{len(scores)} prompts scored; mean predicted refusal {mean:.3f}" + (f"; all in {output}" if output else "")
    )
