"""Models declared in a YAML file, so that a served model is one entry.

```yaml
models:
  - name: qwen-vllm                 # what you pass to --model
    backend: openai                 # openai (default) or anthropic
    model: Qwen/Qwen2.5-7B-Instruct # the name the server knows
    base_url: [http://gpu1:8000/v1, http://gpu2:8000/v1]
    api_key_env: VLLM_API_KEY       # the NAME of a variable holding the key, never the key
    concurrency: 64
    params: {temperature: 0, max_tokens: 256}
```

The file is ``--models-file`` (env ``OVERREFUSAL_MODELS_FILE``), else ``$OVERREFUSAL_HOME/models.yaml``
when it exists. Keys never go in the file: an ``api_key`` field is an error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from overrefusal import paths
from overrefusal.errors import BadInputError


class DefaultParams(BaseModel):
    """Generation defaults of a model entry; command-line options override them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    system_prompt: str | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1)
    top_p: float | None = Field(default=None, ge=0, le=1)
    seed: int | None = None


class ModelEntry(BaseModel):
    """One declared model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    backend: str = "openai"
    model: str = Field(min_length=1)
    base_url: str | list[str] | None = None
    api_key_env: str | None = None
    concurrency: int | None = Field(default=None, ge=1)
    rpm: float | None = Field(default=None, gt=0)
    timeout_s: float | None = Field(default=None, gt=0)
    max_retries: int | None = Field(default=None, ge=0)
    params: DefaultParams = DefaultParams()
    extra_body: dict[str, Any] | None = None

    def backend_args(self) -> dict[str, Any]:
        """Keyword arguments for the backend (unset fields left to the backend's defaults)."""
        fields = ("model", "base_url", "api_key_env", "concurrency", "rpm", "timeout_s", "max_retries", "extra_body")
        return {f: getattr(self, f) for f in fields if getattr(self, f) is not None}


def default_models_file() -> Path:
    """``$OVERREFUSAL_HOME/models.yaml``."""
    return paths.home() / "models.yaml"


def load_models_file(path: Path) -> dict[str, ModelEntry]:
    """Read and validate a models file.

    Raises:
        BadInputError: the file is missing, is not YAML, or an entry is invalid (the message names it).
    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BadInputError(f"cannot read models file {path}: {exc.strerror}; give an existing YAML file") from None
    except UnicodeDecodeError as exc:
        raise BadInputError(
            f"models file {path} is not valid UTF-8 (bad byte at offset {exc.start}): re-save it as UTF-8"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise BadInputError(f"models file {path}{where} is not valid YAML: fix its syntax") from None
    items = data.get("models") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise BadInputError(f"models file {path} must hold a list under 'models:': see the README example")
    entries: dict[str, ModelEntry] = {}
    for number, item in enumerate(items, start=1):
        label = f"models file {path} entry {number}"
        if isinstance(item, dict) and any("key" in str(k).lower() and k != "api_key_env" for k in item):
            raise BadInputError(
                f"{label} holds a key field: keys never go in files; put the key in an environment variable "
                "and name it with api_key_env"
            )
        try:
            entry = ModelEntry.model_validate(item)
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"]) or "entry"
            raise BadInputError(f"{label}: {loc}: {first['msg']}: fix the entry") from None
        if entry.name in entries:
            raise BadInputError(f"{label}: name {entry.name!r} is declared twice: give each model its own name")
        entries[entry.name] = entry
    return entries


def lookup(name: str | None, models_file: Path | None) -> ModelEntry | None:
    """The entry called ``name`` in ``models_file`` (or the default file when it exists).

    Raises:
        BadInputError: an explicitly given file lacks ``name``, or the file is invalid.
    """
    if not name:
        return None
    path = models_file or default_models_file()
    if models_file is None and not path.is_file():
        return None
    entries = load_models_file(path)
    if name in entries:
        return entries[name]
    if models_file is not None:
        raise BadInputError(f"model {name!r} is not in {path}: choose one of {', '.join(entries) or '(none)'}")
    return None
