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


class ModelSpec(_Section):
    """A model: a registered backend name and its arguments (e.g. ``model``, ``base_url``, ``api_key_env``)."""

    backend: str
    args: dict[str, Any] = Field(default_factory=dict)


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


class ExportConfig(_Section):
    """``generate export``: files in the OR-Bench layout and a datasheet."""

    output_dir: str = "benchmark"
    formats: list[ExportFormat] = Field(default_factory=lambda: list[ExportFormat](["csv", "jsonl"]))
    save_to_disk: bool = False
    """Also write a ``datasets`` DatasetDict per subset (needs the ``hub`` extra)."""


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
