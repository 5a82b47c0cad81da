"""``overrefusal generate``: build an OR-Bench-style benchmark, one stage per subcommand, or ``all``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import yaml
from rich import box
from rich.console import Console
from rich.table import Table

from overrefusal import model_config
from overrefusal.backends import backends
from overrefusal.errors import BadInputError
from overrefusal.generation.checks import StageChecksFailed
from overrefusal.generation.config import ModelSpec, load_config
from overrefusal.generation.pipeline import STAGES, run_all, run_stage
from overrefusal.generation.prefilter import describe

_HELP = {
    "seeds": "Ask the generator for toxic seed prompts per category, dedup, and top up to the target.",
    "rewrite": "Rewrite every seed into N seemingly-toxic-but-benign prompts.",
    "moderate": "Label candidates with K moderators, vote, and give flagged prompts a second chance.",
    "dedup": "Drop exact and near-duplicates (within the set and against exclusion sets); diversity report.",
    "hard": "Run the panel; keep prompts refused by >= k models; sample the hard subset and toxic control set.",
    "export": "Write CSV/JSONL/parquet in the OR-Bench layout and the datasheet.",
}


def _summary(name: str, report: dict[str, Any]) -> str:
    usage = report.get("usage", {})
    detail = {k: report[k] for k in ("total", "totals", "rows", "counts") if k in report}
    lines = [
        f"{name}: {usage.get('requests_sent', 0)} requests sent, {usage.get('responses_cached', 0)} from cache, "
        f"{usage.get('prompt_tokens', 0)}+{usage.get('completion_tokens', 0)} tokens; {json.dumps(detail)}"
    ]
    if report.get("prefilter"):
        lines.append("  " + describe(report["prefilter"]))
    checks = report.get("checks", [])
    passed = [c["name"] for c in checks if c["ok"]]
    if passed:
        lines.append(f"  checks passed: {', '.join(dict.fromkeys(passed))}")
    word = "FAILED" if report.get("status") == "failed" else "WARNING"
    lines += [f"  {word} {c['name']}: {c['message']}" for c in checks if not c["ok"]]
    return "\n".join(lines)


def _echo_failed(exc: StageChecksFailed) -> None:
    """Show the failed stage's summary and checks, then let the error line end the output (exit 1)."""
    click.echo(_summary(exc.stage, exc.report))
    raise exc


_config_option = click.option(
    "--config",
    "-c",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The project's YAML config.",
)
_progress_option = click.option("--no-progress", is_flag=True, help="Do not draw progress bars.")


@click.group()
def generate() -> None:
    """Build an over-refusal benchmark with any LLM (OR-Bench method); every stage resumes where it stopped."""


def _stage_command(name: str) -> click.Command:
    @click.command(name=name, help=_HELP[name] + " Re-running sends only the calls without a stored answer.")
    @_config_option
    @_progress_option
    def command(config_path: Path, no_progress: bool) -> None:
        config = load_config(config_path)
        try:
            report = run_stage(name, config, progress=not no_progress)
        except StageChecksFailed as exc:
            if exc.report.get("stage") == name:
                _echo_failed(exc)
            raise
        click.echo(_summary(name, report))

    return command


for _name in STAGES:
    generate.add_command(_stage_command(_name))


@generate.command(name="all")
@_config_option
@_progress_option
def all_cmd(config_path: Path, no_progress: bool) -> None:
    """Run seeds, rewrite, moderate, dedup, hard and export in order from one config."""
    config = load_config(config_path)
    try:
        run_all(config, progress=not no_progress, on_stage=lambda n, r: click.echo(_summary(n, r)))
    except StageChecksFailed as exc:
        _echo_failed(exc)


@generate.command(name="plan")
@_config_option
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.option("--target", help="Also plan `generate search` against this model (BACKEND:MODEL or a models-file name).")
@click.option("--models-file", type=click.Path(dir_okay=False, path_type=Path), help="YAML file declaring models.")
def plan_cmd(config_path: Path, as_json: bool, target: str | None, models_file: Path | None) -> None:
    """Show the calls, tokens and cost each stage will spend per model, before anything is sent."""
    from overrefusal.generation.common import Stage
    from overrefusal.generation.plan import plan, totals
    from overrefusal.store import Store

    config = load_config(config_path)
    with Store() as store:
        search = _target(target, (), models_file) if target else None
        lines = plan(Stage(config=config, store=store, progress=False), search)
    total = totals(lines)
    if as_json:
        click.echo(json.dumps({"lines": [line.as_dict() for line in lines], "total": total}, indent=2))
        return
    console = Console()
    console.width = max(console.width, 130)
    console.print(_plan_table(config.project, lines, total))
    if total["unpriced_models"]:
        priced = f"; priced lines cost {total['priced_cost']:.2f}" if total["priced_cost"] else ""
        click.echo(f"no price configured for {', '.join(total['unpriced_models'])} (add `price:` to its entry){priced}")
    click.echo("nothing was sent; calls already in the cache will not be sent again")


def _money(value: float | None) -> str:
    if value is None:
        return "-"
    return "<0.01" if 0 < value < 0.01 else f"{value:,.2f}"


def _n(value: int) -> str:
    for above, size, suffix in ((1e9, 1e9, "G"), (1e6, 1e6, "M"), (1e4, 1e3, "k")):
        if value >= above:
            return f"{value / size:.3g}{suffix}"
    return f"{value:,}"


def _plan_table(project: str, lines: list[Any], total: dict[str, Any]) -> Table:
    table = Table(title=f"plan of {project}: expected (at most)", title_justify="left", box=box.SIMPLE_HEAD)
    for name in ("stage", "role", "model"):
        table.add_column(name, overflow="fold")
    for name in ("calls", "prompt tokens", "completion tokens", "cost"):
        table.add_column(name, justify="right")
    for line in lines:
        table.add_row(
            line.stage,
            line.role,
            line.model,
            f"{_n(line.calls)} ({_n(line.max_calls)})",
            f"{_n(line.prompt_tokens)} ({_n(line.max_prompt_tokens)})",
            f"{_n(line.completion_tokens)} ({_n(line.max_completion_tokens)})",
            f"{_money(line.cost)} ({_money(line.max_cost)})",
        )
    table.add_section()
    table.add_row(
        "total",
        "",
        "",
        f"{_n(total['calls'])} ({_n(total['max_calls'])})",
        f"{_n(total['prompt_tokens'])} ({_n(total['max_prompt_tokens'])})",
        f"{_n(total['completion_tokens'])} ({_n(total['max_completion_tokens'])})",
        f"{_money(total['cost'])} ({_money(total['max_cost'])})",
    )
    return table


def _target(value: str, extra: tuple[str, ...], models_file: Path | None) -> ModelSpec:
    """``BACKEND:MODEL`` (e.g. ``embedded:qwen``, ``openai:gpt-4o-mini``) or a models-file name, plus ``-T k=v``."""
    args: dict[str, Any] = {}
    for item in extra:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise BadInputError(f"-T {item!r} is not key=value: write e.g. -T base_url=http://127.0.0.1:8000/v1")
        args[key] = yaml.safe_load(raw) if raw else ""
    entry = model_config.lookup(value, models_file)
    if entry is not None:
        return ModelSpec(backend=entry.backend, args={**entry.backend_args(), **args})
    backend, sep, model = value.partition(":")
    if sep and backend in backends.names() and model:
        return ModelSpec(backend=backend, args={"model": model, **args})
    raise BadInputError(
        f"--target {value!r} is neither BACKEND:MODEL (backends: {', '.join(backends.names())}) nor a model "
        "declared in the models file: write e.g. --target openai:gpt-4o-mini -T base_url=URL"
    )


@generate.command(name="search")
@_config_option
@click.option("--target", required=True, help="The model to search against: BACKEND:MODEL or a models-file name.")
@click.option("--target-arg", "-T", "target_args", multiple=True, help="More target backend arguments, key=value.")
@click.option("--models-file", type=click.Path(dir_okay=False, path_type=Path), help="YAML file declaring models.")
@click.option("--from", "source", help="Start from this benchmark file's prompts instead of the project's benign set.")
@click.option("--rounds", type=click.IntRange(min=1), help="Mutation rounds (default: search.rounds).")
@click.option("--budget", type=click.IntRange(min=1), help="Most model calls in all (default: search.budget).")
@click.option("--predictor", help="Predictor file (`predict train`) ranking prompts the target still answers.")
@_progress_option
def search_cmd(
    config_path: Path,
    target: str,
    target_args: tuple[str, ...],
    models_file: Path | None,
    source: str | None,
    rounds: int | None,
    budget: int | None,
    predictor: str | None,
    no_progress: bool,
) -> None:
    """Mutate benign prompts until TARGET refuses them while the moderators still call them benign (EvoRefuse-style)."""
    from overrefusal.benchmarks import ColumnMap, load_benchmark
    from overrefusal.generation.common import Stage
    from overrefusal.generation.search import run_search
    from overrefusal.store import Store

    config = load_config(config_path)
    overrides = {"rounds": rounds, "budget": budget, "predictor": predictor}
    search = config.search.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    config = config.model_copy(update={"search": search})
    spec = _target(target, target_args, models_file)
    rows = None
    if source is not None:
        bench = load_benchmark(source, ColumnMap(default_label="benign"))
        rows = [{"text": p.text, "category": p.category} for p in bench.prompts if p.label == "benign"]
    with Store() as store:
        stage = Stage(config=config, store=store, progress=not no_progress)
        if rows is None and stage.records.stage("dedup") is None:
            raise BadInputError(
                f"project {config.project!r} has no benign set yet: run `overrefusal generate all` (through dedup) "
                "first, or start from a file with --from FILE"
            )
        report = run_search(stage, spec, rows)
    click.echo(_summary("search", report))
    for step in report["history"]:
        extra = f", {step['kept']} of {step['mutations']} mutations kept" if step["round"] else ""
        click.echo(f"  round {step['round']}: population refusal rate {step['refusal_rate']:.0%}{extra}")
    out = config.path(config.export.output_dir)
    click.echo(
        f"  {report['total']} benign prompts the target refuses ({report['stopped']}): {out / report['files'][0]}"
    )
    if report.get("status") == "failed":
        raise StageChecksFailed("search", report)
