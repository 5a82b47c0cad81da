"""``overrefusal run``: evaluate one model on one benchmark."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich import box
from rich.console import Console
from rich.table import Table

from overrefusal.cached_model import CachePolicy
from overrefusal.cli.endpoint_options import endpoint_options, resolve_backend
from overrefusal.cli.options import FiniteFloat, benchmark_options, column_map, parse_kv
from overrefusal.errors import RunIncomplete
from overrefusal.judges import DEFAULT_JUDGE, IMAGE_JUDGE, judges
from overrefusal.metrics import RateStat
from overrefusal.records import GenerateParams
from overrefusal.report.single import interval, pct
from overrefusal.runner import RunResult
from overrefusal.runner import run as run_api
from overrefusal.summary import MAX_ERROR_RATE


@click.command()
@benchmark_options
@click.option("--backend", default="embedded", show_default=True, help="Backend name (see `overrefusal list`).")
@click.option(
    "--model",
    "-m",
    default=None,
    help="Model for the backend (embedded: qwen, smollm2 or a .gguf path), or a models-file entry.",
)
@endpoint_options
@click.option("-B", "backend_args", multiple=True, metavar="KEY=VALUE", help="Extra backend argument (repeatable).")
@click.option(
    "--judge",
    "-j",
    default=None,
    help=f"Judge name (see `overrefusal list`) [default: {DEFAULT_JUDGE}; {IMAGE_JUDGE} for image generators].",
)
@click.option("-J", "judge_args", multiple=True, metavar="KEY=VALUE", help="Extra judge argument (repeatable).")
@click.option("--limit", "-n", type=click.IntRange(min=1), default=None, help="Evaluate only N prompts.")
@click.option("--max-tokens", type=click.IntRange(min=1), default=None, help="Tokens per answer [backend default].")
@click.option("--temperature", type=FiniteFloat(min=0.0, max=2.0), default=0.0, show_default=True, help="0 to 2.")
@click.option("--top-p", type=FiniteFloat(min=0.0, max=1.0), default=None, help="0 to 1 [server default].")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--system-prompt", default=None, help="System prompt (OR-Bench uses none).")
@click.option(
    "--samples",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Answers per prompt (use with --temperature > 0); rates are per prompt, intervals account for it.",
)
@click.option("--no-cache", is_flag=True, help="Send every prompt again; the new answers replace the stored ones.")
@click.option(
    "--cache-tag",
    default="",
    metavar="TAG",
    help="Keep a separate cache for this model name (e.g. two checkpoints served under one name).",
)
@click.option(
    "--judge-reasoning", is_flag=True, help="Also judge whether a reasoning model's thinking decided to refuse."
)
@click.option(
    "--output-dir", "-o", type=click.Path(file_okay=False, path_type=Path), default=Path("runs"), show_default=True
)
@click.option(
    "--max-error-rate",
    type=FiniteFloat(min=0.0, max=1.0),
    default=MAX_ERROR_RATE,
    show_default=True,
    help="Share of answers missing above which the run is incomplete (exit 1).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary JSON on stdout instead of the table.")
@click.option("--no-progress", is_flag=True, help="Do not draw progress bars.")
def run(**opts: Any) -> None:
    """Query a model on a benchmark, judge every answer, and report over-refusal vs toxic refusal.

    Exit status: 0 when the run is complete (its numbers can be trusted), 1 when it is incomplete
    or failed (stopped early, more answers missing than --max-error-rate, or the backend unusable;
    the run folder is written with status "incomplete" and running the same command again
    continues it), 2 for bad usage or input.
    """
    backend_args = parse_kv(opts["backend_args"], "-B")
    if opts["model"]:
        backend_args["model"] = opts["model"]
    backend, backend_args, entry_params = resolve_backend(click.get_current_context(), opts, backend_args)
    opts.update(entry_params)
    params = GenerateParams(
        system_prompt=opts["system_prompt"],
        temperature=opts["temperature"],
        max_tokens=opts["max_tokens"],
        top_p=opts["top_p"],
        seed=opts["seed"],
    )
    if opts["samples"] > 1 and not opts["temperature"]:
        click.echo(
            f"warning: --samples {opts['samples']} at temperature 0: the answers will mostly be identical; "
            "pass --temperature (e.g. 0.7)",
            err=True,
        )
    judge_args = parse_kv(opts["judge_args"], "-J")
    if opts["judge"] is not None:
        judges.factory(opts["judge"])  # an unknown judge is a usage error before anything loads
    result = run_api(
        benchmark=opts["benchmark"],
        backend=backend,
        backend_args=backend_args,
        judge=opts["judge"],
        judge_args=judge_args,
        params=params,
        samples=opts["samples"],
        cache=CachePolicy(refresh=opts["no_cache"], tag=opts["cache_tag"]),
        judge_reasoning=opts["judge_reasoning"],
        limit=opts["limit"],
        columns=column_map(opts),
        hub_config=opts["hub_config"],
        output_dir=opts["output_dir"],
        progress=not opts["no_progress"],
        max_error_rate=opts["max_error_rate"],
    )
    if opts["as_json"]:
        click.echo(result.summary.model_dump_json(indent=2))
    elif result.summary.coverage.get("overall", 0.0) > 0:  # no table of nothing: the error line says it all
        print_table(result)
    stages = result.summary.run.judge_stages
    if stages:
        click.echo("judge stages: " + ", ".join(f"{k} {v}" for k, v in stages.items()), err=True)
    if not result.complete:
        raise RunIncomplete(incomplete_line(result))


def incomplete_line(result: RunResult) -> str:
    """The one line an incomplete run ends with: the cause, the fix, and where its partial results are."""
    summary = result.summary
    answered = round(summary.coverage.get("overall", 0.0) * summary.run.prompts)
    saved = f"; partial run in {result.run_dir}" if result.run_dir is not None else ""
    where = f" ({answered} of {summary.run.prompts} prompts answered{saved})"
    if summary.stop_reason:
        return summary.stop_reason + where
    return (
        f"the run is incomplete: {summary.incomplete_reason}; its rates cover only the answered prompts: "
        f"run the same command again to retry the rest{where}"
    )


def _cell(st: RateStat) -> tuple[str, str]:
    """(rate with interval, refused/scored)."""
    if st.rate is None:
        return "\u2014", f"0/{st.scored}"
    return f"{pct(st.rate)} ({interval(st)})", f"{st.refused}/{st.scored}"


def print_table(result: RunResult) -> None:
    """Print the over-refusal table, overall and per category, then the run folder."""
    m = result.summary.metrics
    info = result.summary.run
    caption = "rate (95% Wilson CI); unscored answers and errors never count as refusals"
    if info.samples > 1:
        caption = (
            f"{info.samples} answers per prompt: rate = mean over prompts of the share of answers refused "
            "(95% CI for clustered answers); n counts answers; unscored answers and errors never count as refusals"
        )
    coverage = result.summary.coverage
    status = "" if result.complete else "INCOMPLETE: "
    table = Table(
        title=f"{status}{info.model} on {info.benchmark} (judge: {info.judge})",
        caption=caption + "; provider: refused by the provider (counted as refusals); coverage: share answered",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
    )
    table.add_column("category", min_width=10 if result.complete else 20)
    for heading in ("over-refusal", "n", "toxic refusal", "n", "provider", "unscored", "errors", "coverage"):
        table.add_column(heading, justify="right", no_wrap=True)

    def add(name: str, benign: RateStat, toxic: RateStat, share: float | None, bold: bool = False) -> None:
        table.add_row(
            name,
            *_cell(benign),
            *_cell(toxic),
            str(benign.provider_refusal + toxic.provider_refusal),
            str(benign.unscored + toxic.unscored),
            str(benign.errors + toxic.errors + benign.missing + toxic.missing),
            "\u2014" if share is None else f"{share:.0%}",
            style="bold" if bold else None,
        )

    for c in m.categories:
        add(c.category, c.benign, c.toxic, coverage.get(c.category))
    if m.stimuli_differ:
        table.add_section()
        for stim in m.stimuli:
            add(f"stimulus: {stim.category}", stim.benign, stim.toxic, None)
    table.add_section()
    overall = "overall" if result.complete else "overall (incomplete)"
    add(overall, m.over_refusal, m.toxic_refusal, coverage.get("overall"), bold=True)
    console = Console(width=max(Console().width, 130))
    console.print(table)
    console.print(
        f"status: {result.summary.status}; {info.requests_sent} requests sent, "
        f"{info.responses_cached} answers from cache, {info.duration_s:.1f}s"
    )
    truncated = sum(1 for o in result.outcomes if o.response is not None and o.response.ended_in_reasoning)
    if info.reasoning_tokens or truncated or any(o.response and o.response.reasoning for o in result.outcomes):
        cut = f"{truncated} answer{'s' * (truncated != 1)} truncated in reasoning"
        console.print(
            f"reasoning: {info.reasoning_tokens} of {info.completion_tokens} completion tokens; "
            f"{cut}{' (unscored: raise --max-tokens)' if truncated else ''}",
            soft_wrap=True,
        )
    if m.reasoning is not None:
        benign, toxic = m.reasoning.over_refusal, m.reasoning.toxic_refusal
        console.print(
            f"reasoning decided to refuse: benign {_cell(benign)[0]} [{_cell(benign)[1]}], "
            f"toxic {_cell(toxic)[0]} [{_cell(toxic)[1]}]",
            soft_wrap=True,
        )
    if result.run_dir is not None:
        console.print(f"run folder: {result.run_dir}", soft_wrap=True)
        console.print(f"report:     {result.run_dir / 'report.html'}", soft_wrap=True)
