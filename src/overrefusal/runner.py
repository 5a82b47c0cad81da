"""The evaluation pipeline: benchmark -> queries -> responses -> verdicts -> metrics -> run folder."""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from overrefusal import __version__
from overrefusal.backends import Backend, backends
from overrefusal.benchmarks import Benchmark, ColumnMap, load_benchmark
from overrefusal.cached_model import CachedModel, CachePolicy
from overrefusal.errors import BadInputError
from overrefusal.judges import DEFAULT_JUDGE, Judge, judges
from overrefusal.metrics import Outcome, compute
from overrefusal.records import GenerateParams, Prompt, Query, Response, Verdict
from overrefusal.rundir import write_run_dir
from overrefusal.store import Store
from overrefusal.summary import RunInfo, Summary
from overrefusal.verdicts import judge_responses


@dataclass
class RunResult:
    """What :func:`run` returns."""

    summary: Summary
    run_dir: Path | None
    outcomes: list[Outcome] = field(repr=False)


def _stage_counts(judge: Judge, verdicts: Sequence[Verdict | None]) -> dict[str, int] | None:
    """How many verdicts each stage of a composite judge decided (None for a single judge)."""
    counts: dict[str, int] = {}
    for verdict in verdicts:
        stage = judge.stage_of(verdict) if verdict is not None and verdict.judge == judge.name else None
        if stage is not None:
            counts[stage] = counts.get(stage, 0) + 1
    return counts or None


def _check_writable(folder: Path) -> None:
    """Fail before any model call when the run folder cannot be written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInputError(
            f"cannot create the output folder {folder}: {exc.strerror}; pass a writable --output-dir"
        ) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise BadInputError(f"the output folder {folder} is not writable: pass a writable --output-dir")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:60] or "model"


def run(
    benchmark: str | Benchmark = "starter",
    backend: str | Backend = "embedded",
    *,
    backend_args: dict[str, Any] | None = None,
    judge: str | Judge = DEFAULT_JUDGE,
    judge_args: dict[str, Any] | None = None,
    params: GenerateParams | None = None,
    limit: int | None = None,
    columns: ColumnMap | None = None,
    hub_config: str | None = None,
    output_dir: Path | str | None = "runs",
    store: Store | None = None,
    progress: bool = True,
) -> RunResult:
    """Evaluate a model's over-refusal on a benchmark and write a run folder.

    Args:
        benchmark: ``starter``, a file path, a hub dataset name, or a loaded :class:`Benchmark`.
        backend: a registered backend name or a :class:`Backend` instance.
        backend_args: keyword arguments for the backend (e.g. ``{"model": "smollm2"}``).
        judge: a registered judge name or a :class:`Judge` instance.
        judge_args: keyword arguments for the judge.
        params: generation parameters; ``max_tokens=None`` takes the backend's default.
        limit: evaluate only this many prompts (spread over labels and categories).
        columns: column mapping for files in other layouts.
        hub_config: configuration name for hub datasets.
        output_dir: parent folder of the run folder; ``None`` writes no folder.
        store: the response store (default: the one in ``$OVERREFUSAL_HOME``).
        progress: draw progress bars on stderr.
    """
    started = time.perf_counter()
    bench = benchmark if isinstance(benchmark, Benchmark) else load_benchmark(benchmark, columns, config=hub_config)
    bench = bench.limit(limit)
    backend_args = dict(backend_args or {})
    model_backend = backend if isinstance(backend, Backend) else backends.create(backend, **backend_args)
    the_judge = judge if isinstance(judge, Judge) else judges.create(judge, **(judge_args or {}))
    base = params or GenerateParams()
    if base.max_tokens is None:
        base = base.model_copy(update={"max_tokens": model_backend.default_max_tokens})
    if output_dir is not None:
        _check_writable(Path(output_dir))
    own_store = store is None
    the_store = store or Store()
    try:
        queries = [Query.for_prompt(p, base) for p in bench.prompts]
        responses, verdicts = asyncio.run(
            _answer_and_judge(model_backend, the_judge, bench.prompts, queries, the_store, progress)
        )
    finally:
        if own_store:
            the_store.close()
    outcomes = [Outcome(p, r, v) for p, r, v in zip(bench.prompts, responses, verdicts, strict=True)]
    created = datetime.now(timezone.utc)
    run_id = f"{created:%Y%m%d-%H%M%S}-{_slug(model_backend.model)}"
    info = RunInfo(
        id=run_id,
        created=created.isoformat(timespec="seconds"),
        overrefusal_version=__version__,
        benchmark=bench.name,
        backend=model_backend.name,
        model=model_backend.model,
        backend_args={k: v for k, v in backend_args.items() if isinstance(v, str | int | float | bool)},
        judge=the_judge.name,
        judge_version=the_judge.version,
        params=base,
        limit=limit,
        prompts=len(bench.prompts),
        requests_sent=sum(1 for r in responses if not r.cached),
        responses_cached=sum(1 for r in responses if r.cached),
        prompt_tokens=sum(r.usage.prompt_tokens for r in responses),
        completion_tokens=sum(r.usage.completion_tokens for r in responses),
        duration_s=round(time.perf_counter() - started, 3),
        judge_stages=_stage_counts(the_judge, verdicts),
    )
    summary = Summary(run=info, metrics=compute(outcomes))
    run_dir = write_run_dir(Path(output_dir), run_id, summary, outcomes) if output_dir is not None else None
    return RunResult(summary=summary, run_dir=run_dir, outcomes=outcomes)


async def _answer_and_judge(
    backend: Backend,
    judge: Judge,
    prompts: Sequence[Prompt],
    queries: Sequence[Query],
    store: Store,
    progress: bool,
) -> tuple[list[Response], list[Verdict | None]]:
    try:
        responses = await CachedModel(backend, store, CachePolicy(), progress).answer(queries)
        verdicts = await judge_responses(judge, prompts, responses, store, progress)
    finally:
        await backend.aclose()
        await judge.aclose()
    return responses, verdicts
