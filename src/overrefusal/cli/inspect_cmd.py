"""``overrefusal list`` and ``overrefusal validate``: look before you run."""

from __future__ import annotations

from collections import Counter
from typing import Any

import click

from overrefusal.backends import backends
from overrefusal.backends.model_files import ALIASES
from overrefusal.benchmarks import load_benchmark
from overrefusal.cli.options import benchmark_options, column_map
from overrefusal.judges import DEFAULT_JUDGE, judges


@click.command("list")
def list_cmd() -> None:
    """List backends, judges and embedded models."""
    click.echo("backends: " + ", ".join(backends.names()))
    click.echo("judges:   " + ", ".join(judges.names()) + f" (default: {DEFAULT_JUDGE})")
    click.echo("embedded models: " + ", ".join(f"{k} ({v})" for k, v in ALIASES.items()))


@click.command()
@benchmark_options
def validate(**opts: Any) -> None:
    """Load a benchmark without calling any model and print its counts per category and label."""
    bench = load_benchmark(opts["benchmark"], column_map(opts), config=opts["hub_config"])
    counts = Counter((p.category, p.label) for p in bench.prompts)
    with_image = sum(1 for p in bench.prompts if p.image is not None)
    images = f", {with_image} with an image" if with_image else ""
    click.echo(f"{bench.name}: {len(bench.prompts)} prompts, {len(bench.categories)} categories{images}")
    for category in bench.categories:
        click.echo(f"  {category:<28} benign {counts[(category, 'benign')]:>6}  toxic {counts[(category, 'toxic')]:>6}")
