"""The run summary: a versioned, stable JSON schema that reports read."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from overrefusal.backends.http import SECRET_NAME
from overrefusal.metrics import Metrics, Outcome
from overrefusal.records import GenerateParams

MAX_ERROR_RATE = 0.02
"""Default share of prompts left without an answer above which a run is incomplete."""

Status = Literal["complete", "incomplete"]

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
    variant: str | None = None
    """The experiment variant this run is a cell of (e.g. ``helpful`` or ``t0.7``); None for a plain run."""
    experiment: str | None = None
    """The experiment's name when the run was one cell of a sweep."""
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
    status: Status = "complete"
    """``incomplete`` when the run stopped early or more answers than ``max_error_rate`` are missing:
    its rates then cover only the answered prompts (see ``coverage``)."""
    stop_reason: str | None = None
    """Why the run stopped early (one line with the fix), or None."""
    error_rate: float = 0.0
    """Share of requested answers missing (failed requests plus requests never sent)."""
    max_error_rate: float = MAX_ERROR_RATE
    coverage: dict[str, float] = {}
    """Share of requested answers received, per category and ``overall``."""

    @property
    def incomplete_reason(self) -> str | None:
        """One line saying why the run is incomplete (None when complete)."""
        if self.status == "complete":
            return None
        if self.stop_reason:
            return self.stop_reason
        return f"{self.error_rate:.1%} of prompts have no answer, more than --max-error-rate {self.max_error_rate:.0%}"


def health(outcomes: Sequence[Outcome], stopped: str | None, max_error_rate: float) -> dict[str, Any]:
    """The completeness fields of a :class:`Summary`: status, error rate and coverage per category."""
    totals: dict[str, list[int]] = {}
    for outcome in outcomes:
        ok = outcome.response is not None and outcome.response.ok
        for name in (outcome.prompt.category, "overall"):
            counts = totals.setdefault(name, [0, 0])
            counts[0] += int(ok)
            counts[1] += 1
    overall = totals.get("overall", [0, 0])
    error_rate = (overall[1] - overall[0]) / overall[1] if overall[1] else 0.0
    coverage = {name: round(got / total, 4) for name, (got, total) in sorted(totals.items()) if name != "overall"}
    coverage["overall"] = round(overall[0] / overall[1], 4) if overall[1] else 1.0
    incomplete = stopped is not None or error_rate > max_error_rate
    return {
        "status": "incomplete" if incomplete else "complete",
        "stop_reason": stopped,
        "error_rate": round(error_rate, 4),
        "max_error_rate": max_error_rate,
        "coverage": coverage,
    }
