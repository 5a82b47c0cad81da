"""Options shared by several commands."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from overrefusal.benchmarks import ColumnMap
from overrefusal.errors import BadInputError
from overrefusal.records import GenerateParams

F = TypeVar("F", bound=Callable[..., Any])


class FiniteFloat(click.FloatRange):
    """A float range that also refuses ``nan`` and ``inf`` (which click's FloatRange lets through)."""

    name = "finite float"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """Convert, then reject values that are not finite."""
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


def parse_kv(pairs: Sequence[str], what: str) -> dict[str, Any]:
    """Parse ``key=value`` options; numbers and booleans are converted."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise BadInputError(f"{what} {pair!r} is not key=value: write e.g. {what} model=smollm2")
        out[key.strip().replace("-", "_")] = _convert(value)
    return out


def _convert(value: str) -> Any:
    if value.lstrip().startswith(("{", "[")):  # JSON objects and lists, e.g. -B 'extra_body={"top_k": 20}'
        try:
            return json.loads(value)
        except ValueError:
            raise BadInputError(f"{value!r} looks like JSON but is not valid JSON: fix the quoting") from None
    lowered = value.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            number = kind(value)
        except ValueError:
            continue
        return number if math.isfinite(number) else value  # "nan", "inf" stay text
    return value


def benchmark_options(func: F) -> F:
    """--benchmark plus column mapping options."""
    decorators = [
        click.option(
            "--benchmark",
            "-b",
            default="starter",
            show_default=True,
            help="'starter', a .csv/.jsonl/.parquet file, or a hub dataset (e.g. bench-llm/or-bench).",
        ),
        click.option("--hub-config", default=None, help="Hub dataset configuration, e.g. or-bench-hard-1k."),
        click.option("--prompt-column", default=None, help="Column holding the prompt text."),
        click.option("--category-column", default=None, help="Column holding the category."),
        click.option("--label-column", default=None, help="Column holding benign/toxic (or safe/unsafe)."),
        click.option(
            "--image-column",
            default=None,
            help="Column holding an image: a path relative to the benchmark file, or a data URI [image].",
        ),
        click.option("--stimulus-column", default=None, help="Column holding the stimulus type [stimulus]."),
        click.option(
            "--label",
            "default_label",
            type=click.Choice(["benign", "toxic"]),
            default=None,
            help="Label for every row of a file without a label column.",
        ),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def column_map(options: dict[str, Any]) -> ColumnMap:
    """Build a :class:`ColumnMap` from the parsed benchmark options."""
    return ColumnMap(
        prompt=options.get("prompt_column"),
        category=options.get("category_column"),
        label=options.get("label_column"),
        image=options.get("image_column"),
        stimulus=options.get("stimulus_column"),
        default_label=options.get("default_label"),
    )


def generation_options(func: F) -> F:
    """--limit, the generation parameters, --samples, --no-cache and --cache-tag: what makes the queries."""
    decorators = [
        click.option("--limit", "-n", type=click.IntRange(min=1), default=None, help="Evaluate only N prompts."),
        click.option(
            "--max-tokens", type=click.IntRange(min=1), default=None, help="Tokens per answer [backend default]."
        ),
        click.option(
            "--temperature", type=FiniteFloat(min=0.0, max=2.0), default=0.0, show_default=True, help="0 to 2."
        ),
        click.option("--top-p", type=FiniteFloat(min=0.0, max=1.0), default=None, help="0 to 1 [server default]."),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option("--system-prompt", default=None, help="System prompt (OR-Bench uses none)."),
        click.option(
            "--samples",
            type=click.IntRange(min=1),
            default=1,
            show_default=True,
            help="Answers per prompt (use with --temperature > 0); rates are per prompt, intervals account for it.",
        ),
        click.option(
            "--no-cache", is_flag=True, help="Send every prompt again; the new answers replace the stored ones."
        ),
        click.option(
            "--cache-tag",
            default="",
            metavar="TAG",
            help="Keep a separate cache for this model name (e.g. two checkpoints served under one name).",
        ),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def generate_params(opts: dict[str, Any]) -> GenerateParams:
    """The generation parameters of :func:`generation_options` (warns about samples at temperature 0)."""
    if opts["samples"] > 1 and not opts["temperature"]:
        click.echo(
            f"warning: --samples {opts['samples']} at temperature 0: the answers will mostly be identical; "
            "pass --temperature (e.g. 0.7)",
            err=True,
        )
    return GenerateParams(
        system_prompt=opts["system_prompt"],
        temperature=opts["temperature"],
        max_tokens=opts["max_tokens"],
        top_p=opts["top_p"],
        seed=opts["seed"],
    )
