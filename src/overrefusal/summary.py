"""The run summary: a versioned, stable JSON schema that reports read."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from overrefusal.metrics import Metrics
from overrefusal.records import GenerateParams

FORMAT_VERSION = 1
"""Bump when a field changes meaning or is removed; adding fields keeps the version."""


class RunInfo(BaseModel):
    """What was run, enough to reproduce it. Never holds secrets."""

    model_config = ConfigDict(frozen=True)

    id: str
    created: str
    """UTC ISO-8601 timestamp."""
    overrefusal_version: str
    benchmark: str
    backend: str
    model: str
    backend_args: dict[str, Any]
    judge: str
    judge_version: str
    params: GenerateParams
    limit: int | None
    prompts: int
    requests_sent: int
    """Requests made by this invocation (cache misses)."""
    responses_cached: int
    prompt_tokens: int
    completion_tokens: int
    duration_s: float
    judge_stages: dict[str, int] | None = None
    """Items decided by each stage or rule of a composite judge (``cascade``, ``vote``); None otherwise."""


class Summary(BaseModel):
    """``summary.json``: field order is part of the format."""

    model_config = ConfigDict(frozen=True)

    format_version: int = FORMAT_VERSION
    run: RunInfo
    metrics: Metrics
