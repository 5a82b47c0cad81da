"""``overrefusal generate``: build an OR-Bench-style benchmark, one stage per subcommand, or ``all``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from overrefusal.generation.checks import StageChecksFailed
from overrefusal.generation.config import load_config
from overrefusal.generation.pipeline import STAGES, run_all, run_stage

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
