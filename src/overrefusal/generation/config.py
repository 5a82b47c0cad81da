"""The YAML config of a generation project; every stage command reads the same file."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from overrefusal.errors import BadInputError
from overrefusal.generation.votes import VoteRule

ExportFormat = Literal["csv", "jsonl", "parquet"]


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Price(_Section):
    """What a model's tokens cost, in any currency, per million tokens (used by ``generate plan``)."""

    input_per_mtok: float = Field(ge=0.0)
    output_per_mtok: float = Field(ge=0.0)


class ModelSpec(_Section):
    """A model: a registered backend name and its arguments (e.g. ``model``, ``base_url``, ``api_key_env``)."""

    backend: str
    args: dict[str, Any] = Field(default_factory=dict)
    price: Price | None = None
    """Token prices, for the cost column of ``generate plan`` (never sent anywhere)."""


class SeedsConfig(_Section):
    """``generate seeds``: toxic seed prompts per category."""

    per_category: int = Field(default=2000, ge=1)
    batch_size: int = Field(default=20, ge=1, le=200)
    max_calls_per_category: int | None = Field(default=None, ge=1)
    """Retry budget; default: three times the calls the target needs."""
    temperature: float = Field(default=1.0, ge=0.0)
    max_tokens: int = Field(default=2048, ge=1)

    @property
    def budget(self) -> int:
        """Most generator calls per category."""
        needed = -(-self.per_category // self.batch_size)
        return self.max_calls_per_category or 3 * needed


class RewriteConfig(_Section):
    """``generate rewrite``: N seemingly-toxic-but-benign rewrites per seed."""

    per_seed: int = Field(default=5, ge=1, le=20)
    temperature: float = Field(default=0.7, ge=0.0)
    max_tokens: int = Field(default=1024, ge=1)
    retries: int = Field(default=2, ge=0)
    """Extra calls for a seed whose output had no parsable rewrite."""
    generator: ModelSpec | None = None
    """Another model for rewriting (default: the top-level generator)."""


class SecondChanceConfig(_Section):
    """Answer flagged prompts with this model and restore those whose answer the moderators deem benign."""

    answerer: ModelSpec
    max_tokens: int = Field(default=512, ge=1)
    temperature: float = Field(default=0.0, ge=0.0)


class ModerateConfig(_Section):
    """``generate moderate``: K moderators vote on every candidate."""

    moderators: list[ModelSpec] = Field(min_length=1)
    vote: VoteRule = "majority"
    max_tokens: int = Field(default=1024, ge=1)
    temperature: float = Field(default=0.0, ge=0.0)
    parse_retries: int = Field(default=1, ge=0)
    """Extra calls for a moderator output without a readable tag (another seed, and a reminder to end with the tag)."""
    second_chance: SecondChanceConfig | None = None


class ExcludeSet(_Section):
    """A benchmark file whose prompts must not be repeated (e.g. a public benchmark)."""

    path: str
    prompt_column: str | None = None


class DedupConfig(_Section):
    """``generate dedup``: exact and near-duplicate removal, and the diversity report."""

    threshold: float = Field(default=0.9, gt=0.0, le=1.0)
    """Cosine similarity at or above which two prompts are near-duplicates."""
    exclude: list[ExcludeSet] = Field(default_factory=list)
    sample_cap: int = Field(default=500, ge=10)
    """Prompts per category used for Self-BLEU and mean pairwise cosine."""
    block_size: int = Field(default=1024, ge=16)


class PrefilterConfig(_Section):
    """Ask the panel only on the benign prompts a refusal predictor ranks highest (``overrefusal predict train``)."""

    predictor: str
    """Path of a predictor file written by ``overrefusal predict train``."""
    keep: float = Field(default=0.5, gt=0.0, le=1.0)
    """Share of the benign prompts, highest predicted refusal first, that the panel answers."""
    audit: float = Field(default=0.1, ge=0.0, le=1.0)
    """Share of the skipped prompts the panel answers anyway, to measure the recall the pre-filter costs."""
    min_audit: int = Field(default=20, ge=0)
    """At least this many skipped prompts are audited (when there are that many)."""


class HardConfig(_Section):
    """``generate hard``: benign prompts refused by at least ``min_refusals`` panel models."""

    panel: list[ModelSpec] = Field(default_factory=list)
    judge: str = "keywords"
    judge_args: dict[str, Any] = Field(default_factory=dict)
    min_refusals: int = Field(default=3, ge=1)
    size: int = Field(default=1000, ge=0)
    toxic_size: int = Field(default=600, ge=0)
    max_tokens: int = Field(default=512, ge=1)
    temperature: float = Field(default=0.0, ge=0.0)
    seed: int = 0
    prefilter: PrefilterConfig | None = None


class ExportConfig(_Section):
    """``generate export``: files in the OR-Bench layout and a datasheet."""

    output_dir: str = "benchmark"
    formats: list[ExportFormat] = Field(default_factory=lambda: list[ExportFormat](["csv", "jsonl"]))
    save_to_disk: bool = False
    """Also write a ``datasets`` DatasetDict per subset (needs the ``hub`` extra)."""


class ChecksConfig(_Section):
    """Sanity checks run at the end of every stage (see :mod:`overrefusal.generation.checks`)."""

    action: Literal["fail", "warn"] = "fail"
    """``fail``: a failed check fails the stage (exit 1; the next stage will not run); ``warn``: report only."""
    min_items: int = Field(default=8, ge=1)
    """Rates are checked only over at least this many items (per moderator, per category)."""
    constant_label: float = Field(default=0.95, gt=0.0, le=1.0)
    """A moderator giving one label to this share of prompts or more fails the moderate stage."""
    template_echo: float = Field(default=0.2, gt=0.0, le=1.0)
    """Share of outputs that echo a template's example (placeholder items, the example tag) that fails a stage."""
    copied_examples: float = Field(default=0.2, gt=0.0, le=1.0)
    """Share of rewrites that copy the template's few-shot examples that fails the rewrite stage."""
    parse_failures: float = Field(default=0.5, gt=0.0, le=1.0)
    """Share of calls without a readable output (or moderator abstentions) that fails a stage."""
    min_yield: float = Field(default=0.1, ge=0.0, le=1.0)
    """A category whose stage output is below this share of what was asked for (or empty) fails the stage."""
    second_pass_sample: int = Field(default=40, ge=0)
    """Benign prompts the moderators judge again, asked in other words (0: no second pass)."""
    second_pass_toxic: float = Field(default=0.5, gt=0.0, le=1.0)
    """Share of that sample the second pass calls toxic that fails the moderate stage."""


class SearchConfig(_Section):
    """``generate search``: mutate benign prompts until the target model refuses them, keeping them benign."""

    start: int = Field(default=100, ge=1)
    """Benign prompts of the project (or of ``--from``) the target answers first."""
    population: int = Field(default=20, ge=1)
    """Prompts kept between rounds: the ones the target refuses or (nearly) refuses most."""
    mutations: int = Field(default=3, ge=1, le=10)
    """Mutations asked per parent and round."""
    rounds: int = Field(default=3, ge=1)
    budget: int = Field(default=2000, ge=1)
    """Most model calls of the search (generator, moderators and target together)."""
    predictor: str | None = None
    """A predictor file: among prompts the target answers, higher predicted refusal is fitter."""
    temperature: float = Field(default=0.9, ge=0.0)
    max_tokens: int = Field(default=512, ge=1)
    seed: int = 0


class PipelineConfig(_Section):
    """One generation project: the models, the categories and each stage's settings."""

    project: str = Field(min_length=1, max_length=80)
    taxonomy: str | None = None
    """Path of a taxonomy YAML (default: the 10 OR-Bench categories)."""
    categories: list[str] = Field(default_factory=list)
    """Generate only these categories (default: all of the taxonomy)."""
    generator: ModelSpec
    seeds: SeedsConfig = SeedsConfig()
    rewrite: RewriteConfig = RewriteConfig()
    moderate: ModerateConfig
    dedup: DedupConfig = DedupConfig()
    hard: HardConfig = HardConfig()
    export: ExportConfig = ExportConfig()
    checks: ChecksConfig = ChecksConfig()
    search: SearchConfig = SearchConfig()
    base_dir: Path = Field(default=Path("."), exclude=True)
    """Folder of the config file; relative paths in the config are resolved against it."""

    @model_validator(mode="after")
    def _check(self) -> PipelineConfig:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", self.project):
            raise ValueError("project must be letters, digits, '.', '_' or '-' (it names the output files)")
        if self.hard.panel and self.hard.min_refusals > len(self.hard.panel):
            raise ValueError("hard.min_refusals cannot exceed the number of panel models")
        return self

    def path(self, value: str) -> Path:
        """Resolve a path from the config against the config file's folder."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.base_dir / p


def load_config(path: str | Path) -> PipelineConfig:
    """Read and validate a project config; any problem is a one-line :class:`BadInputError`."""
    file = Path(path)
    if not file.is_file():
        raise BadInputError(f"config file {file} does not exist: give the YAML file of the project (see README)")
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise BadInputError(f"{file} is not valid YAML ({type(exc).__name__}): fix the syntax") from None
    if not isinstance(data, dict):
        raise BadInputError(f"{file} must be a YAML mapping with project, generator and moderate keys")
    try:
        return PipelineConfig.model_validate({**data, "base_dir": file.resolve().parent})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}" for err in exc.errors()[:3]
        )
        raise BadInputError(f"{file}: {problems}: fix the config (see README, 'Build a benchmark')") from None
