"""Experiments: models x variants x benchmarks, each judged by one or more judges, in one command.

A *cell* is one model under one variant (system prompt, temperature) on one benchmark, judged by one
judge; each cell is a run folder tagged with its variant. Every judge after the first re-judges the
answers the first one saw: extra judges never send a request. Cells share the store (the cache), so a
cell already answered costs nothing. Models behind different endpoints run concurrently; the cells of
one endpoint (and every in-process model) run one after the other.

The same is declared in a YAML file (``overrefusal run --experiment FILE``)::

    name: system-prompts
    benchmarks: [starter]
    limit: 40
    models: [qwen, smollm2]                # embedded names, models-file entries, or inline entries
    variants:
      - {name: none}
      - {name: helpful, system_prompt: "You are a helpful assistant."}
      - {name: careful, system_prompt_file: careful.txt, temperature: 0.7}
    judges: [classifier, keywords]         # or {name: llm, args: {backend: embedded}}
    params: {max_tokens: 64}
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from overrefusal import model_config
from overrefusal.backends import backends
from overrefusal.benchmarks import Benchmark, ColumnMap, load_benchmark
from overrefusal.cached_model import CachePolicy
from overrefusal.errors import BadInputError
from overrefusal.model_config import DefaultParams, ModelEntry
from overrefusal.records import GenerateParams
from overrefusal.runner import RunResult, evaluate
from overrefusal.store import Store
from overrefusal.summary import MAX_ERROR_RATE


@dataclass(frozen=True)
class ModelSpec:
    """A model of the experiment, resolved: backend name and arguments, and its generation defaults."""

    name: str
    """As the user named it (``qwen``, a models-file entry)."""
    backend: str
    args: dict[str, Any]
    defaults: dict[str, Any] = field(default_factory=dict)
    """Generation settings of its models-file entry, used where the variant and the experiment set none."""

    @property
    def endpoint(self) -> str:
        """What the model's requests compete for: its servers, or this process for in-process models."""
        urls = self.args.get("base_url")
        if not urls:
            return f"{self.backend}:local" if self.backend in ("embedded", "fake") else f"{self.backend}:default"
        return f"{self.backend}:{urls if isinstance(urls, str) else ','.join(map(str, urls))}"


class Variant(BaseModel):
    """Settings that change the answers: a system prompt, a temperature, ... Unset fields keep the base."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(default="", max_length=60)
    system_prompt: str | None = None
    system_prompt_file: Path | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    seed: int | None = None

    def apply(self, base: GenerateParams, defaults: dict[str, Any]) -> GenerateParams:
        """The parameters of this variant for a model with ``defaults`` (variant > base given > model defaults)."""
        update = {k: v for k, v in defaults.items() if k in GenerateParams.model_fields}
        update.update(base.model_dump(exclude_unset=True))
        for name in ("system_prompt", "temperature", "top_p", "max_tokens", "seed"):
            value = getattr(self, name)
            if value is not None:
                update[name] = value
        if update.get("system_prompt") == "":
            update["system_prompt"] = None
        return GenerateParams(**update)


class JudgeSpec(BaseModel):
    """A judge of the experiment and its arguments."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = None
    """None: the default judge for the backend (``classifier``, or the image judge for image generators)."""
    args: dict[str, Any] = {}


class ExperimentFile(BaseModel):
    """The YAML experiment file."""

    model_config = ConfigDict(extra="forbid")

    name: str = "experiment"
    models: list[str | ModelEntry] = Field(min_length=1)
    backend: str = "embedded"
    """Backend of models named by a plain string that is not a models-file entry."""
    models_file: Path | None = None
    variants: list[Variant] = [Variant()]
    benchmarks: list[str] = ["starter"]
    judges: list[str | JudgeSpec] = [JudgeSpec()]
    params: DefaultParams = DefaultParams()
    limit: int | None = Field(default=None, ge=1)
    samples: int = Field(default=1, ge=1)
    output_dir: Path = Path("runs")
    max_error_rate: float = Field(default=MAX_ERROR_RATE, ge=0, le=1)


@dataclass
class Experiment:
    """What to evaluate: every model under every variant on every benchmark, judged by every judge."""

    models: list[ModelSpec]
    variants: list[Variant] = field(default_factory=lambda: [Variant()])
    benchmarks: list[str | Benchmark] = field(default_factory=lambda: ["starter"])
    judges: list[JudgeSpec] = field(default_factory=lambda: [JudgeSpec()])
    params: GenerateParams = field(default_factory=GenerateParams)
    name: str | None = None
    limit: int | None = None
    samples: int = 1
    columns: ColumnMap | None = None
    hub_config: str | None = None
    cache: CachePolicy = field(default_factory=CachePolicy)
    output_dir: Path | None = Path("runs")
    max_error_rate: float = MAX_ERROR_RATE

    def __post_init__(self) -> None:
        if not self.models:
            raise BadInputError("an experiment needs at least one model")
        names = [v.name for v in self.variants]
        if len(self.variants) > 1 and (len(set(names)) != len(names) or "" in names):
            raise BadInputError(
                f"variants need distinct, non-empty names (got {', '.join(repr(n) for n in names)}): name each one"
            )
        judges = [j.name for j in self.judges]
        if len(set(judges)) != len(judges) and len({repr(sorted(j.args.items())) for j in self.judges}) == 1:
            raise BadInputError("a judge is named twice: give each judge once")


@dataclass
class ExperimentResult:
    """Every cell's :class:`~overrefusal.runner.RunResult`, in the order models x variants x benchmarks x judges."""

    results: list[RunResult]

    @property
    def complete(self) -> bool:
        """Whether every cell is complete."""
        return all(r.complete for r in self.results)

    def to_records(self) -> list[dict[str, Any]]:
        """One row per cell: model, variant, judge, benchmark, rates with intervals, status, folder."""
        return [r.cell_record() for r in self.results]

    def to_pandas(self) -> Any:
        """:meth:`to_records` as a pandas DataFrame (needs pandas)."""
        from overrefusal.runner import dataframe

        return dataframe(self.to_records())


def load_experiment(path: Path) -> Experiment:
    """Read an experiment file; relative paths in it are relative to the file. Errors are one line."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BadInputError(f"cannot read experiment file {path}: {exc.strerror}; give an existing YAML file") from None
    except UnicodeDecodeError as exc:
        raise BadInputError(f"experiment file {path} is not valid UTF-8 (offset {exc.start}): re-save it") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise BadInputError(f"experiment file {path}{where} is not valid YAML: fix its syntax") from None
    try:
        spec = ExperimentFile.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "file"
        raise BadInputError(f"experiment file {path}: {loc}: {first['msg']}: fix it (see the README)") from None
    here = path.parent

    def local(p: Path) -> Path:
        return p if p.is_absolute() else here / p

    models_file = local(spec.models_file) if spec.models_file else None
    models = [resolve_model(m, spec.backend, models_file) for m in spec.models]
    variants = [
        v.model_copy(update={"system_prompt": read_prompt_file(local(v.system_prompt_file))})
        if v.system_prompt_file
        else v
        for v in spec.variants
    ]
    benchmarks: list[str | Benchmark] = [str(local(Path(b))) if local(Path(b)).exists() else b for b in spec.benchmarks]
    return Experiment(
        models=models,
        variants=variants,
        benchmarks=benchmarks,
        judges=[JudgeSpec(name=j) if isinstance(j, str) else j for j in spec.judges],
        params=GenerateParams(**spec.params.model_dump(exclude_none=True)),
        name=spec.name,
        limit=spec.limit,
        samples=spec.samples,
        output_dir=local(spec.output_dir),
        max_error_rate=spec.max_error_rate,
    )


def read_prompt_file(path: Path) -> str:
    """A system prompt kept in a file (``--system-prompt @file``), without its trailing newline."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise BadInputError(
            f"cannot read the system prompt file {path}: {exc.strerror}: give an existing file"
        ) from None
    except UnicodeDecodeError:
        raise BadInputError(f"the system prompt file {path} is not valid UTF-8: re-save it as UTF-8") from None
    if not text:
        raise BadInputError(f"the system prompt file {path} is empty: write the prompt in it")
    return text


def resolve_model(model: str | ModelEntry, backend: str, models_file: Path | None) -> ModelSpec:
    """A model named in an experiment: a models-file entry, an inline entry, or a model of ``backend``."""
    entry = model if isinstance(model, ModelEntry) else model_config.lookup(model, None)
    if entry is None and models_file is not None and isinstance(model, str):
        entry = model_config.load_models_file(models_file).get(model)
    if entry is None:
        return ModelSpec(name=str(model), backend=backend, args={"model": model})
    defaults = entry.params.model_dump(exclude_none=True)
    return ModelSpec(name=entry.name, backend=entry.backend, args=entry.backend_args(), defaults=defaults)


def sweep_variants(system_prompts: Sequence[str | None], temperatures: Sequence[float]) -> list[Variant]:
    """Variants of every system prompt x temperature given on the command line.

    A system prompt ``@file`` is read from the file and named after it; other texts are named ``sp1``,
    ``sp2``, ... in order, and an empty one (no system prompt) ``none``. Temperatures are named ``t0.7``.
    Only the settings that vary enter the names; one of each gives one unnamed variant.
    """
    prompts: list[tuple[str, str | None]] = []  # (name, text): None keeps the base, "" means no system prompt
    for index, text in enumerate(system_prompts, start=1):
        if text is not None and text.startswith("@"):
            path = Path(text[1:])
            prompts.append((path.stem, read_prompt_file(path)))
        elif not text:
            prompts.append(("none", ""))
        else:
            prompts.append((f"sp{index}", text))
    temps: list[float | None] = list(temperatures) or [None]
    variants = []
    for (prompt_name, prompt), temperature in itertools.product(prompts or [("", None)], temps):
        parts = ([prompt_name] if len(prompts) > 1 else []) + ([f"t{temperature:g}"] if len(temps) > 1 else [])
        variants.append(Variant(name="+".join(parts), system_prompt=prompt, temperature=temperature))
    return variants


@dataclass(frozen=True)
class _Cell:
    model: ModelSpec
    variant: Variant
    benchmark: Benchmark


async def arun_experiment(
    experiment: Experiment,
    *,
    store: Store | None = None,
    progress: bool = True,
    on_cell: Callable[[RunResult], None] | None = None,
) -> ExperimentResult:
    """Evaluate every cell; models on different endpoints concurrently. ``on_cell`` sees each cell as it ends."""
    benches = [
        b if isinstance(b, Benchmark) else load_benchmark(b, experiment.columns, config=experiment.hub_config)
        for b in experiment.benchmarks
    ]
    benches = [b.limit(experiment.limit) for b in benches]
    cells = [_Cell(m, v, b) for m in experiment.models for v in experiment.variants for b in benches]
    by_endpoint: dict[str, list[_Cell]] = {}
    for cell in cells:
        by_endpoint.setdefault(cell.model.endpoint, []).append(cell)
    own_store = store is None
    the_store = store or Store()
    done: dict[int, list[RunResult]] = {}
    tag_judge = len(experiment.judges) > 1

    async def lane(lane_cells: list[_Cell]) -> None:
        for cell in lane_cells:
            results = await evaluate(
                cell.benchmark,
                cell.model.backend,
                backend_args=cell.model.args,
                judges=[(j.name, j.args) for j in experiment.judges],
                params=cell.variant.apply(experiment.params, cell.model.defaults),
                limit=experiment.limit,
                output_dir=experiment.output_dir,
                store=the_store,
                progress=progress,
                samples=experiment.samples,
                cache=experiment.cache,
                max_error_rate=experiment.max_error_rate,
                variant=cell.variant.name or None,
                experiment=experiment.name,
                tag_judge=tag_judge,
            )
            done[cells.index(cell)] = results
            for result in results:
                if on_cell is not None:
                    on_cell(result)

    for model in experiment.models:  # a misspelt backend fails now, not after the other lanes ran for an hour
        backends.factory(model.backend)
    try:
        # every lane runs to its end even when another fails: the store stays open until all are done
        ended = await asyncio.gather(*(lane(group) for group in by_endpoint.values()), return_exceptions=True)
    finally:
        if own_store:
            the_store.close()
    failed = [e for e in ended if isinstance(e, BaseException)]
    if failed:
        raise failed[0]
    return ExperimentResult([r for index in sorted(done) for r in done[index]])


def run_experiment(experiment: Experiment, **kwargs: Any) -> ExperimentResult:
    """:func:`arun_experiment`, from synchronous code or from inside a running event loop (a notebook)."""
    from overrefusal.runner import run_coroutine

    return run_coroutine(arun_experiment(experiment, **kwargs))
