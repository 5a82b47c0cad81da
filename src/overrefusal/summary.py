"""The run summary: a versioned, stable JSON schema that reports read."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict

from overrefusal.backends.http import SECRET_NAME
from overrefusal.metrics import Metrics
from overrefusal.records import GenerateParams

FORMAT_VERSION = 1
"""Bump when a field changes meaning or is removed; adding fields keeps the version."""


def _public(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _public(v) for k, v in value.items() if not SECRET_NAME.search(str(k))}
    if isinstance(value, list | tuple | set | frozenset):
        items = [_public(v) for v in value]
        return sorted(items, key=json.dumps) if isinstance(value, set | frozenset) else items
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return f"<{type(value).__name__}>"  # a Python object given through the API (a script, a backend)


def public_args(args: Mapping[str, Any]) -> dict[str, Any]:
    """Arguments as JSON values, every key that names a secret (``api_key``, ``token``, ...) left out."""
    return dict(_public(args))


class RunInfo(BaseModel):
    """What was run, enough to reproduce it. Never holds secrets."""

    model_config = ConfigDict(frozen=True)

    id: str
    created: str
    """UTC ISO-8601 timestamp."""
    overrefusal_version: str
    benchmark: str
    benchmark_hash: str | None = None
    """Content hash of the prompts evaluated: two runs with the same hash saw the same prompts."""
    backend: str
    model: str
    backend_args: dict[str, Any]
    """Backend arguments as given (base URLs, extra body, list values), secrets left out."""
    backend_identity: dict[str, str] | None = None
    """What identifies the model in the cache key."""
    served_models: list[str] = []
    """Model names the server reported in its answers."""
    system_fingerprints: list[str] = []
    """Server configuration fingerprints seen in the answers."""
    judge: str
    judge_version: str
    judge_args: dict[str, Any] = {}
    judge_config: dict[str, Any] = {}
    """What changes the judge's verdicts (e.g. the classifier's weights digest, the LLM judge's model)."""
    judge_key: str | None = None
    """Hash of the judge configuration: runs with different keys were judged differently."""
    judge_reasoning: bool = False
    params: GenerateParams
    samples: int = 1
    """Answers per prompt."""
    cache_tag: str | None = None
    no_cache: bool = False
    """Every answer was requested anew (``--no-cache``)."""
    limit: int | None
    prompts: int
    requests_sent: int
    """Requests made by this invocation (cache misses)."""
    responses_cached: int
    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int = 0
    """Of the completion tokens, those spent reasoning (as reported by the provider)."""
    duration_s: float
    judge_stages: dict[str, int] | None = None
    """Items decided by each stage or rule of a composite judge (``cascade``, ``vote``); None otherwise."""


class Summary(BaseModel):
    """``summary.json``: field order is part of the format."""

    model_config = ConfigDict(frozen=True)

    format_version: int = FORMAT_VERSION
    run: RunInfo
    metrics: Metrics
