"""Run one stage or the whole chain of a project config."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from overrefusal.errors import BadInputError
from overrefusal.generation.common import Stage
from overrefusal.generation.config import PipelineConfig
from overrefusal.generation.dedup import run_dedup
from overrefusal.generation.export import run_export
from overrefusal.generation.hard import run_hard
from overrefusal.generation.moderate import run_moderate
from overrefusal.generation.rewrite import run_rewrite
from overrefusal.generation.seeds import run_seeds
from overrefusal.store import Store

STAGES: dict[str, Callable[[Stage], dict[str, Any]]] = {
    "seeds": run_seeds,
    "rewrite": run_rewrite,
    "moderate": run_moderate,
    "dedup": run_dedup,
    "hard": run_hard,
    "export": run_export,
}
"""The stages in chain order."""


def run_stage(name: str, config: PipelineConfig, store: Store | None = None, progress: bool = True) -> dict[str, Any]:
    """Run stage ``name`` of ``config`` and return its report.

    A stage reads the records of the previous one from the store; running it again re-sends
    only the model calls that have no stored answer.
    """
    if name not in STAGES:
        raise BadInputError(f"unknown stage {name!r}: choose one of {', '.join(STAGES)}")
    own = store is None
    the_store = store or Store()
    try:
        stage = Stage(config=config, store=the_store, progress=progress)
        stage.taxonomy.subset(config.categories)  # validate categories before any call
        order = list(STAGES)
        previous = order[order.index(name) - 1] if order.index(name) > 0 else None
        if previous is not None and stage.records.stage(previous) is None:
            raise BadInputError(
                f"project {config.project!r} has no finished {previous!r} stage in {the_store.path}: run "
                f"`overrefusal generate {previous}` first (or `generate all`), or check the project name"
            )
        return STAGES[name](stage)
    finally:
        if own:
            the_store.close()


def run_all(
    config: PipelineConfig,
    store: Store | None = None,
    progress: bool = True,
    on_stage: Callable[[str, dict[str, Any]], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Run every stage in order; returns the report of each."""
    own = store is None
    the_store = store or Store()
    reports: dict[str, dict[str, Any]] = {}
    try:
        for name in STAGES:
            reports[name] = run_stage(name, config, the_store, progress)
            if on_stage is not None:
                on_stage(name, reports[name])
    finally:
        if own:
            the_store.close()
    return reports
