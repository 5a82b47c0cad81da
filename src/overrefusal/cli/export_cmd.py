"""``overrefusal export pairs``: training data that fixes over-refusal, from judged runs."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import click

from overrefusal.cli.options import FiniteFloat
from overrefusal.pairs import build_pairs
from overrefusal.pairs_export import write_pairs
from overrefusal.report.runs import load_runs


@click.group()
def export() -> None:
    """Export data built from runs."""


@export.command("pairs")
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    default=Path("pairs.jsonl"),
    show_default=True,
    help="A .jsonl or .parquet file, or a folder with --to datasets (a dataset card is written beside it).",
)
@click.option("--to", "to", type=click.Choice(["jsonl", "parquet", "datasets"]), default=None, help="Output format.")
@click.option(
    "--format",
    "layout",
    type=click.Choice(["dpo", "sft"]),
    default="dpo",
    show_default=True,
    help="dpo: prompt, chosen, rejected (TRL DPOTrainer); sft: prompt, completion (the chosen side only).",
)
@click.option(
    "--target",
    "targets",
    multiple=True,
    help="Cell whose failures to fix (its name, model, or parts of its name; repeatable) [every cell].",
)
@click.option("--no-balance", is_flag=True, help="Keep every benign pair, however few toxic pairs there are.")
@click.option(
    "--benign-per-toxic",
    type=FiniteFloat(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="Balanced: at most this many benign pairs per toxic pair.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Which benign pairs balancing keeps.")
def pairs(
    runs: tuple[Path, ...],
    output: Path,
    to: str | None,
    layout: str,
    targets: tuple[str, ...],
    no_balance: bool,
    benign_per_toxic: float,
    seed: int,
) -> None:
    """Preference pairs from judged runs: for a benign prompt a target refused, a compliant answer from another cell
    is chosen and the refusal rejected; for a toxic prompt it answered, a refusal is chosen. No pair ever rewards
    complying with a toxic prompt.

    RUNS are run folders (runs/<id>/) of several models, or of one model under several variants (e.g. a helpful
    system prompt), on the same prompts.
    """  # noqa: D205 - click shows the first paragraph as it is
    built = build_pairs(
        load_runs(list(runs)), targets, balance=not no_balance, benign_per_toxic=benign_per_toxic, seed=seed
    )
    path, card_path, count = write_pairs(built, output, "sft" if layout == "sft" else "dpo", to)
    kinds = Counter(p.kind for p in built.pairs)
    detail = ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
    noun = "pairs" if layout == "dpo" else "rows"
    click.echo(f"wrote {path}: {count} {noun} ({detail}); card: {card_path}")
