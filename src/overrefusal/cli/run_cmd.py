"""``overrefusal run``: evaluate a model on a benchmark, or sweep models x variants x judges (an experiment)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource
from rich import box
from rich.console import Console
from rich.table import Table

from overrefusal.cached_model import CachePolicy
from overrefusal.cli.endpoint_options import endpoint_options, resolve_backend
from overrefusal.cli.experiment_table import print_experiment
from overrefusal.cli.options import FiniteFloat, benchmark_options, column_map, parse_kv
from overrefusal.cli.scale_options import bulk_factory, bulk_judge, scale_options
from overrefusal.errors import BadInputError, RunIncomplete
from overrefusal.experiment import (
    Experiment,
    JudgeSpec,
    ModelSpec,
    load_experiment,
    read_prompt_file,
    run_experiment,
    sweep_variants,
)
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
    "models",
    multiple=True,
    help="Model for the backend (embedded: qwen, smollm2 or a .gguf path), or a models-file entry; repeat to "
    "compare several models.",
)
@endpoint_options
@click.option("-B", "backend_args", multiple=True, metavar="KEY=VALUE", help="Extra backend argument (repeatable).")
@click.option(
    "--judge",
    "-j",
    "judge_names",
    multiple=True,
    help=f"Judge name (see `overrefusal list`) [default: {DEFAULT_JUDGE}; {IMAGE_JUDGE} for image generators]; "
    "repeat to judge the same answers with several judges.",
)
@click.option(
    "-J",
    "judge_args",
    multiple=True,
    metavar="KEY=VALUE",
    help="Extra judge argument (repeatable); JUDGE.KEY=VALUE gives it to one of several judges.",
)
@click.option("--limit", "-n", type=click.IntRange(min=1), default=None, help="Evaluate only N prompts.")
@click.option("--max-tokens", type=click.IntRange(min=1), default=None, help="Tokens per answer [backend default].")
@click.option(
    "--temperature",
    "temperatures",
    type=FiniteFloat(min=0.0, max=2.0),
    multiple=True,
    help="0 to 2 [0]; repeat to sweep temperatures.",
)
@click.option("--top-p", type=FiniteFloat(min=0.0, max=1.0), default=None, help="0 to 1 [server default].")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--system-prompt",
    "system_prompts",
    multiple=True,
    help="System prompt, or @FILE to read it from a file (OR-Bench uses none); repeat to sweep system prompts "
    "('' for none).",
)
@click.option(
    "--experiment",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="YAML file declaring models x variants x benchmarks x judges (see the README).",
)
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
@scale_options
def run(**opts: Any) -> None:
    """Query a model on a benchmark, judge every answer, and report over-refusal vs toxic refusal.

    Several --model, --system-prompt, --temperature or --judge values make an experiment: every model under
    every variant, each cell a run folder tagged with its variant, extra judges re-judging the same answers
    (no new requests), and one summary table at the end. --experiment FILE declares the same in YAML.

    Exit status: 0 when the run is complete (its numbers can be trusted), 1 when it is incomplete
    or failed (stopped early, more answers missing than --max-error-rate, or the backend unusable;
    the run folder is written with status "incomplete" and running the same command again
    continues it), 2 for bad usage or input.
    """
    ctx = click.get_current_context()
    for name in opts["judge_names"]:
        judges.factory(name)  # an unknown judge is a usage error before anything loads
    several = (len(opts["models"]), len(opts["system_prompts"]), len(opts["temperatures"]), len(opts["judge_names"]))
    if (opts["experiment"] is not None or max(several) > 1) and (opts["batch"] or opts["ray_address"]):
        raise BadInputError("--batch and --ray run one model at a time: run each cell of the experiment on its own")
    if opts["experiment"] is not None:
        _run_sweep(load_experiment(opts["experiment"]), opts, ctx)
        return
    if max(several) > 1:
        _run_sweep(_cli_experiment(opts, ctx), opts, ctx)
        return
    backend_args = parse_kv(opts["backend_args"], "-B")
    opts["model"] = opts["models"][0] if opts["models"] else None
    if opts["model"]:
        backend_args["model"] = opts["model"]
    backend, backend_args, entry_params = resolve_backend(ctx, opts, backend_args)
    prompt = opts["system_prompts"][0] if opts["system_prompts"] else entry_params.get("system_prompt")
    if prompt and prompt.startswith("@"):
        prompt = read_prompt_file(Path(prompt[1:]))
    temperature = opts["temperatures"][0] if opts["temperatures"] else entry_params.get("temperature", 0.0)
    params = GenerateParams(
        system_prompt=prompt or None,
        temperature=temperature,
        max_tokens=opts["max_tokens"] if opts["max_tokens"] is not None else entry_params.get("max_tokens"),
        top_p=opts["top_p"] if opts["top_p"] is not None else entry_params.get("top_p"),
        seed=entry_params.get("seed", opts["seed"]),
    )
    _warn_samples(opts["samples"], temperature)
    judge_args = parse_kv(opts["judge_args"], "-J")
    bulk = bulk_factory(opts, backend_args)
    result = run_api(
        benchmark=opts["benchmark"],
        backend=backend,
        backend_args=backend_args,
        judge=opts["judge_names"][0] if opts["judge_names"] else None,
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
        bulk=bulk,
        bulk_judge=bulk_judge(opts, judge_args),
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


def _warn_samples(samples: int, temperature: float | None) -> None:
    if samples > 1 and not temperature:
        click.echo(
            f"warning: --samples {samples} at temperature 0: the answers will mostly be identical; "
            "pass --temperature (e.g. 0.7)",
            err=True,
        )


def _judge_specs(names: tuple[str | None, ...], raw_args: tuple[str, ...]) -> list[JudgeSpec]:
    """Judges of a sweep; ``-J judge.key=value`` goes to that judge only, ``-J key=value`` to every judge."""
    args = parse_kv(raw_args, "-J")
    specs = []
    for name in names:
        mine = {k: v for k, v in args.items() if "." not in k or k.split(".", 1)[0] not in names}
        mine.update({k.split(".", 1)[1]: v for k, v in args.items() if "." in k and k.split(".", 1)[0] == name})
        specs.append(JudgeSpec(name=name, args=mine))
    if len({s.name for s in specs}) != len(specs):
        raise BadInputError("a --judge is given twice: give each judge once")
    return specs


def _cli_experiment(opts: dict[str, Any], ctx: click.Context) -> Experiment:
    """The experiment several --model / --system-prompt / --temperature / --judge values describe."""
    models = []
    for name in opts["models"] or (None,):
        backend_args = parse_kv(opts["backend_args"], "-B")
        if name:
            backend_args["model"] = name
        backend, args, defaults = resolve_backend(ctx, {**opts, "model": name}, backend_args)
        models.append(ModelSpec(name=name or backend, backend=backend, args=args, defaults=defaults))
    given = {
        k: opts[k]
        for k in ("max_tokens", "top_p", "seed")
        if ctx.get_parameter_source(k) not in (ParameterSource.DEFAULT, None)
    }
    variants = sweep_variants(opts["system_prompts"], opts["temperatures"])
    _warn_samples(opts["samples"], max((v.temperature or 0 for v in variants), default=0))
    return Experiment(
        models=models,
        variants=variants,
        benchmarks=[opts["benchmark"]],
        judges=_judge_specs(opts["judge_names"] or (None,), opts["judge_args"]),
        params=GenerateParams(**given),
        name="sweep",
        limit=opts["limit"],
        samples=opts["samples"],
        columns=column_map(opts),
        hub_config=opts["hub_config"],
        cache=CachePolicy(refresh=opts["no_cache"], tag=opts["cache_tag"]),
        output_dir=opts["output_dir"],
        max_error_rate=opts["max_error_rate"],
    )


def _run_sweep(experiment: Experiment, opts: dict[str, Any], ctx: click.Context) -> None:
    """Run every cell, print the summary table (or JSON), and fail when a cell is incomplete."""
    for name in ("limit", "output_dir", "max_error_rate", "samples"):
        if ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT, None):
            setattr(experiment, name, opts[name])
    cells = len(experiment.models) * len(experiment.variants) * len(experiment.benchmarks) * len(experiment.judges)
    click.echo(f"experiment {experiment.name}: {cells} cells", err=True)

    def finished(result: RunResult) -> None:
        info = result.summary.run
        tag = " · ".join(t for t in (info.model, info.variant, info.judge) if t)
        click.echo(f"  done: {tag} on {info.benchmark} ({result.summary.status}) -> {result.run_dir}", err=True)

    outcome = run_experiment(experiment, progress=not opts["no_progress"], on_cell=finished)
    if opts["as_json"]:
        click.echo("[" + ",\n".join(r.summary.model_dump_json(indent=2) for r in outcome.results) + "]")
    else:
        print_experiment(outcome)
    incomplete = [r for r in outcome.results if not r.complete]
    if incomplete:
        first = incomplete[0]
        raise RunIncomplete(
            f"{len(incomplete)} of {len(outcome.results)} cells are incomplete; the first: {first.summary.run.model}"
            f"{' (' + first.summary.run.variant + ')' if first.summary.run.variant else ''}: {incomplete_line(first)}"
        )


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
