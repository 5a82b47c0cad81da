"""The evaluation pipeline: benchmark -> queries -> responses -> verdicts -> metrics -> run folder."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import re
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from overrefusal import __version__
from overrefusal.backends import Backend, backends
from overrefusal.benchmarks import Benchmark, ColumnMap, load_benchmark
from overrefusal.cached_model import BulkSender, CachedModel, CachePolicy
from overrefusal.errors import BadInputError, MissingDependencyError
from overrefusal.hashing import content_hash
from overrefusal.judges import DEFAULT_JUDGE, IMAGE_JUDGE, Judge
from overrefusal.judges import judges as judges_registry
from overrefusal.metrics import Outcome, compute
from overrefusal.paths import home
from overrefusal.records import GenerateParams, Prompt, Query, Response, Verdict
from overrefusal.rundir import IMAGE_POOL, write_run_dir
from overrefusal.store import Store
from overrefusal.summary import MAX_ERROR_RATE, RunInfo, Summary, health, public_args
from overrefusal.verdicts import BulkJudge, judge_responses, reasoning_view


@dataclass
class RunResult:
    """What :func:`run` returns."""

    summary: Summary
    run_dir: Path | None
    outcomes: list[Outcome] = field(repr=False)

    @property
    def complete(self) -> bool:
        """Whether every answer arrived but for at most ``max_error_rate``, and nothing stopped the run."""
        return self.summary.status == "complete"

    def to_records(self) -> list[dict[str, Any]]:
        """One row per answer: the cell, the prompt, the answer and its verdict (plain dicts, pandas-friendly)."""
        info = self.summary.run
        rows = []
        for o in self.outcomes:
            response, verdict = o.response, o.verdict
            rows.append(
                {
                    "model": info.model,
                    "variant": info.variant,
                    "judge": info.judge,
                    "benchmark": info.benchmark,
                    "prompt_id": o.prompt.id,
                    "category": o.prompt.category,
                    "label": o.prompt.label,
                    "prompt": o.prompt.text,
                    "response": response.text if response is not None else None,
                    "error": response.error.kind if response is not None and response.error else None,
                    "verdict": verdict.label if verdict is not None else None,
                    "refused": verdict.is_refusal if verdict is not None and verdict.label != "unscored" else None,
                }
            )
        return rows

    def to_pandas(self) -> Any:
        """:meth:`to_records` as a pandas DataFrame (needs pandas: ``pip install pandas``)."""
        return dataframe(self.to_records())

    def cell_record(self) -> dict[str, Any]:
        """The run as one row: model, variant, judge, benchmark, both rates with intervals, status, folder."""
        info, m = self.summary.run, self.summary.metrics
        return {
            "model": info.model,
            "variant": info.variant,
            "judge": info.judge,
            "benchmark": info.benchmark,
            "over_refusal": m.over_refusal.rate,
            "over_refusal_low": m.over_refusal.ci_low,
            "over_refusal_high": m.over_refusal.ci_high,
            "benign_scored": m.over_refusal.scored,
            "toxic_refusal": m.toxic_refusal.rate,
            "toxic_refusal_low": m.toxic_refusal.ci_low,
            "toxic_refusal_high": m.toxic_refusal.ci_high,
            "toxic_scored": m.toxic_refusal.scored,
            "errors": m.over_refusal.errors + m.toxic_refusal.errors,
            "status": self.summary.status,
            "requests_sent": info.requests_sent,
            "run_dir": str(self.run_dir) if self.run_dir is not None else None,
        }


def dataframe(records: list[dict[str, Any]]) -> Any:
    """Records as a pandas DataFrame; a one-line error naming pandas when it is missing."""
    try:
        import pandas
    except ImportError as exc:
        raise MissingDependencyError("to_pandas()", "pandas", ["pandas"]) from exc
    return pandas.DataFrame.from_records(records)


T = TypeVar("T")


def run_coroutine(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion from synchronous code, also inside a running event loop (a notebook's).

    Without a running loop this is :func:`asyncio.run`. Inside one, the coroutine runs on its own loop in a
    worker thread while the caller waits (``await overrefusal.arun(...)`` does not block the loop).
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="overrefusal") as pool:
        return pool.submit(asyncio.run, coro).result()


def _stage_counts(judge: Judge, verdicts: Sequence[Verdict | None]) -> dict[str, int] | None:
    """How many verdicts each stage of a composite judge decided (None for a single judge)."""
    counts: dict[str, int] = {}
    for verdict in verdicts:
        stage = judge.stage_of(verdict) if verdict is not None and verdict.judge == judge.name else None
        if stage is not None:
            counts[stage] = counts.get(stage, 0) + 1
    return counts or None


def _check_writable(folder: Path) -> None:
    """Fail before any model call when the run folder cannot be written; create nothing yet."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise BadInputError(
            f"cannot create the output folder {folder}: {existing} is not a folder; pass a writable --output-dir"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "the output folder" if existing == folder else f"the output folder {folder}: its parent"
        raise BadInputError(f"{what} {existing} is not writable: pass a writable --output-dir")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:60] or "model"


def benchmark_hash(prompts: Sequence[Prompt]) -> str:
    """Content hash of the prompts evaluated (ids, texts, categories, labels; images and stimuli when set), in order."""

    def item(p: Prompt) -> list[str]:
        fields = [p.id, p.text, p.category, p.label]
        if p.image is not None or p.stimulus:  # text-only benchmarks keep the hashes they had
            fields += [p.image.sha256 if p.image else "", p.stimulus]
        return fields

    return content_hash([item(p) for p in prompts], prefix="bench")


def run(
    benchmark: str | Benchmark = "starter",
    backend: str | Backend = "embedded",
    **kwargs: Any,
) -> RunResult:
    """Evaluate a model's over-refusal on a benchmark and write a run folder: :func:`arun` from synchronous code.

    It works inside a running event loop too (a notebook): the evaluation then runs on a loop of its own in
    a worker thread. Takes the arguments of :func:`arun`.
    """
    return run_coroutine(arun(benchmark, backend, **kwargs))


async def arun(
    benchmark: str | Benchmark = "starter",
    backend: str | Backend = "embedded",
    *,
    backend_args: dict[str, Any] | None = None,
    judge: str | Judge | None = None,
    judge_args: dict[str, Any] | None = None,
    params: GenerateParams | None = None,
    limit: int | None = None,
    columns: ColumnMap | None = None,
    hub_config: str | None = None,
    output_dir: Path | str | None = "runs",
    store: Store | None = None,
    progress: bool = True,
    samples: int = 1,
    cache: CachePolicy | None = None,
    judge_reasoning: bool = False,
    max_error_rate: float = MAX_ERROR_RATE,
    variant: str | None = None,
    bulk: Callable[[Backend, Store], BulkSender] | None = None,
    bulk_judge: BulkJudge | None = None,
) -> RunResult:
    """Evaluate a model's over-refusal on a benchmark and write a run folder.

    Args:
        benchmark: ``starter``, a file path, a hub dataset name, or a loaded :class:`Benchmark`.
        backend: a registered backend name or a :class:`Backend` instance.
        backend_args: keyword arguments for the backend (e.g. ``{"model": "smollm2"}``).
        judge: a registered judge name or a :class:`Judge` instance; None takes the default (``classifier``,
            or ``image-outcome`` for a text-to-image backend).
        judge_args: keyword arguments for the judge (recorded in the summary also for an instance).
        params: generation parameters; ``max_tokens=None`` takes the backend's default.
        limit: evaluate only this many prompts (spread over labels and categories).
        columns: column mapping for files in other layouts.
        hub_config: configuration name for hub datasets.
        output_dir: parent folder of the run folder; ``None`` writes no folder.
        store: the response store (default: the one in ``$OVERREFUSAL_HOME``).
        progress: draw progress bars on stderr.
        samples: answers per prompt; rates are per prompt (the fraction of its answers refused).
        cache: ``--no-cache`` and ``--cache-tag``.
        judge_reasoning: also judge whether each answer's reasoning decided to refuse.
        max_error_rate: the share of answers missing above which the run is ``incomplete``.
        variant: a name for the settings this run tries (tags the run folder, groups it in reports).
        bulk: builds the sender that answers the missing queries in bulk from the backend and the
            store (``--batch``: a provider's batch API; ``--ray``: a Ray cluster).
        bulk_judge: judges large response sets elsewhere (``--ray``).

    A run stopped early (see :class:`~overrefusal.errors.RunStopped`) or with more failed
    requests than ``max_error_rate`` is written all the same, with status ``incomplete``, its
    coverage per category and the cause; :attr:`RunResult.complete` is then False.
    """
    bench = benchmark if isinstance(benchmark, Benchmark) else load_benchmark(benchmark, columns, config=hub_config)
    results = await evaluate(
        bench.limit(limit),
        backend,
        backend_args=backend_args,
        judges=[(judge, judge_args or {})],
        params=params,
        limit=limit,
        output_dir=output_dir,
        store=store,
        progress=progress,
        samples=samples,
        cache=cache,
        judge_reasoning=judge_reasoning,
        max_error_rate=max_error_rate,
        variant=variant,
        bulk=bulk,
        bulk_judge=bulk_judge,
    )
    return results[0]


async def evaluate(
    bench: Benchmark,
    backend: str | Backend,
    *,
    backend_args: dict[str, Any] | None = None,
    judges: Sequence[tuple[str | Judge | None, dict[str, Any]]] = ((None, {}),),
    params: GenerateParams | None = None,
    limit: int | None = None,
    output_dir: Path | str | None = "runs",
    store: Store | None = None,
    progress: bool = True,
    samples: int = 1,
    cache: CachePolicy | None = None,
    judge_reasoning: bool = False,
    max_error_rate: float = MAX_ERROR_RATE,
    variant: str | None = None,
    experiment: str | None = None,
    tag_judge: bool = False,
    bulk: Callable[[Backend, Store], BulkSender] | None = None,
    bulk_judge: BulkJudge | None = None,
) -> list[RunResult]:
    """Answer ``bench`` once and judge the answers with each judge: one run (and run folder) per judge.

    Judges after the first re-judge the same answers and send no request; their runs count every answer
    as cached. ``tag_judge`` adds the judge's name to the folder names (several judges in one experiment).
    """
    if not 0 <= max_error_rate <= 1:
        raise BadInputError("--max-error-rate must be between 0 and 1 (e.g. 0.02 for 2%)")
    started = time.perf_counter()
    if samples < 1:
        raise BadInputError("--samples must be at least 1")
    policy = cache or CachePolicy()
    backend_args = dict(backend_args or {})
    model_backend = backend if isinstance(backend, Backend) else backends.create(backend, **backend_args)
    the_judges = [(_judge_for(model_backend, j, dict(a)), dict(a)) for j, a in judges]
    base = params or GenerateParams()
    if base.max_tokens is None:
        base = base.model_copy(update={"max_tokens": model_backend.default_max_tokens})
    queries = [Query.for_prompt(p, base) for p in bench.prompts]
    model_backend.check_queries(queries)  # a backend that cannot send images says so before anything is written
    if output_dir is not None:
        _check_writable(Path(output_dir))
    if model_backend.makes_images:
        model_backend.use_image_dir(Path(output_dir) / IMAGE_POOL if output_dir is not None else home() / "images")
    own_store = store is None
    the_store = store or Store()
    try:
        answered = await _answer_and_judge(
            CachedModel(
                model_backend,
                the_store,
                policy,
                progress,
                bulk=bulk(model_backend, the_store) if bulk is not None else None,
            ),
            [j for j, _ in the_judges],
            bench.prompts,
            queries,
            samples,
            judge_reasoning,
            bulk_judge,
        )
    finally:
        if own_store:
            the_store.close()
    slots, judged, stopped = answered
    prompts = [p for p in bench.prompts for _ in range(samples)]
    responses = [r for r in slots if r is not None]
    results = []
    for index, ((the_judge, judge_args), (verdicts, thoughts)) in enumerate(zip(the_judges, judged, strict=True)):
        outcomes = [Outcome(*row) for row in zip(prompts, slots, verdicts, thoughts, strict=True)]
        created = datetime.now(timezone.utc)
        tags = [model_backend.model, variant or "", the_judge.name if tag_judge else ""]
        run_id = f"{created:%Y%m%d-%H%M%S}-" + "-".join(_slug(t) for t in tags if t)
        sent = sum(1 for r in responses if not r.cached) if index == 0 else 0
        info = RunInfo(
            id=run_id,
            created=created.isoformat(timespec="seconds"),
            overrefusal_version=__version__,
            benchmark=bench.name,
            benchmark_hash=benchmark_hash(bench.prompts),
            backend=model_backend.name,
            model=model_backend.model,
            backend_args=public_args(backend_args),
            backend_identity=dict(model_backend.identity),
            served_models=sorted({r.served_model for r in responses if r.served_model}),
            system_fingerprints=sorted({r.system_fingerprint for r in responses if r.system_fingerprint}),
            variant=variant,
            experiment=experiment,
            judge=the_judge.name,
            judge_version=the_judge.version,
            judge_args=public_args(judge_args),
            judge_config=public_args(the_judge.config),
            judge_key=the_judge.key,
            judge_reasoning=judge_reasoning,
            params=base,
            samples=samples,
            cache_tag=policy.tag or None,
            no_cache=policy.refresh,
            limit=limit,
            prompts=len(bench.prompts),
            requests_sent=sent,
            responses_cached=len(responses) - sent,
            prompt_tokens=sum(r.usage.prompt_tokens for r in responses),
            completion_tokens=sum(r.usage.completion_tokens for r in responses),
            reasoning_tokens=sum(r.usage.reasoning_tokens for r in responses),
            duration_s=round(time.perf_counter() - started, 3),
            judge_stages=_stage_counts(the_judge, verdicts),
        )
        summary = Summary(
            run=info,
            metrics=compute(outcomes, samples=samples, judge_reasoning=judge_reasoning),
            **health(outcomes, stopped, max_error_rate),
        )
        run_dir = write_run_dir(Path(output_dir), run_id, summary, outcomes) if output_dir is not None else None
        results.append(RunResult(summary=summary, run_dir=run_dir, outcomes=outcomes))
    return results


def _judge_for(model_backend: Backend, judge: str | Judge | None, args: dict[str, Any]) -> Judge:
    """The judge to use (None: the default for the backend), refused when it does not fit what the backend makes."""
    if judge is None:
        judge = IMAGE_JUDGE if model_backend.makes_images else DEFAULT_JUDGE
    judge_name = judge.name if isinstance(judge, Judge) else judge
    if model_backend.makes_images != (judge_name == IMAGE_JUDGE):
        raise BadInputError(
            f"the {model_backend.name} backend makes images, judged by what the provider returns: leave out --judge"
            if model_backend.makes_images
            else f"the {IMAGE_JUDGE} judge is for text-to-image backends (--backend openai-images): pick another"
        )
    return judge if isinstance(judge, Judge) else judges_registry.create(judge, **args)


async def _answer_and_judge(
    model: CachedModel,
    judges: Sequence[Judge],
    prompts: Sequence[Prompt],
    queries: Sequence[Query],
    samples: int,
    judge_reasoning: bool,
    bulk_judge: BulkJudge | None = None,
) -> tuple[list[Response | None], list[tuple[list[Verdict | None], list[Verdict | None]]], str | None]:
    """Answer every query ``samples`` times, then judge the answers (and, if asked, their reasoning) with each judge.

    Returns a response per answer slot (None: never answered), per judge a verdict and a reasoning verdict
    per slot, and the cause that stopped the answering early (or None).
    """
    progress = model.progress
    try:
        # a judge that cannot load fails now, before the model is asked anything
        model.backend.check()
        for judge in judges:
            await judge.check()
        answers = await model.answer_partial(queries, samples)
        slots = answers.responses
        repeated = [p for p in prompts for _ in range(samples)]
        have = [i for i, r in enumerate(slots) if r is not None]
        responses = [r for r in slots if r is not None]
        judged = []
        for judge in judges:
            found = await judge_responses(
                judge, [repeated[i] for i in have], responses, model.store, progress, bulk=bulk_judge
            )
            verdicts: list[Verdict | None] = [None] * len(slots)
            for index, verdict in zip(have, found, strict=True):
                verdicts[index] = verdict
            thoughts: list[Verdict | None] = [None] * len(slots)
            if judge_reasoning:
                views = [(i, view) for i in have if (view := reasoning_view(slots[i])) is not None]  # type: ignore[arg-type]
                found = await judge_responses(
                    judge,
                    [repeated[i] for i, _ in views],
                    [view for _, view in views],
                    model.store,
                    progress,
                    bulk=bulk_judge,
                )
                for (index, _), verdict in zip(views, found, strict=True):
                    thoughts[index] = verdict
            judged.append((verdicts, thoughts))
    finally:
        await model.backend.aclose()
        for judge in judges:
            await judge.aclose()
    return slots, judged, answers.stopped
