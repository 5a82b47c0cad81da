"""Run one stage or the whole chain of a project config."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from typing import Any

from overrefusal.errors import BadInputError, MissingDependencyError
from overrefusal.generation.checks import StageChecksFailed
from overrefusal.generation.common import Stage
from overrefusal.generation.config import PipelineConfig
from overrefusal.generation.datasheet import write_datasheet
from overrefusal.store import Store

STAGES: dict[str, str] = {
    "seeds": "overrefusal.generation.seeds:run_seeds",
    "rewrite": "overrefusal.generation.rewrite:run_rewrite",
    "moderate": "overrefusal.generation.moderate:run_moderate",
    "dedup": "overrefusal.generation.dedup:run_dedup",
    "hard": "overrefusal.generation.hard:run_hard",
    "export": "overrefusal.generation.export:run_export",
}
"""The stages in chain order, imported when used (dedup and export need numpy)."""

NEEDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "dedup": ("classifier", ("numpy", "onnxruntime", "tokenizers")),
    "export": ("classifier", ("numpy",)),
}
"""Stage -> (pip extra, libraries it needs beyond the core install)."""


def stage_function(name: str) -> Callable[[Stage], dict[str, Any]]:
    """Import stage ``name``; a missing optional library is a one-line error naming the extra."""
    if name not in STAGES:
        raise BadInputError(f"unknown stage {name!r}: choose one of {', '.join(STAGES)}")
    extra, libraries = NEEDS.get(name, ("", ()))
    missing = [lib for lib in libraries if importlib.util.find_spec(lib) is None]
    if missing:
        raise MissingDependencyError(f"the {name} stage", extra, missing)
    module, _, attr = STAGES[name].partition(":")
    function: Callable[[Stage], dict[str, Any]] = getattr(importlib.import_module(module), attr)
    return function


def run_stage(name: str, config: PipelineConfig, store: Store | None = None, progress: bool = True) -> dict[str, Any]:
    """Run stage ``name`` of ``config`` and return its report.

    A stage reads the records of the previous one from the store; running it again re-sends
    only the model calls that have no stored answer.
    """
    function = stage_function(name)
    own = store is None
    the_store = store or Store()
    try:
        stage = Stage(config=config, store=the_store, progress=progress)
        stage.taxonomy.subset(config.categories)  # validate categories before any call
        order = list(STAGES)
        previous = order[order.index(name) - 1] if order.index(name) > 0 else None
        before = stage.records.stage(previous) if previous is not None else None
        if previous is not None and before is None:
            raise BadInputError(
                f"project {config.project!r} has no finished {previous!r} stage in {the_store.path}: run "
                f"`overrefusal generate {previous}` first (or `generate all`), or check the project name"
            )
        if before is not None and before.get("status") == "failed":
            raise StageChecksFailed(str(previous), before)
        report = function(stage)
        if report.get("status") == "failed":
            write_datasheet(stage, failed=name)
            raise StageChecksFailed(name, report)
        return report
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
    for name in STAGES:  # a missing library fails now, not after the model calls of the first stages
        stage_function(name)
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
