"""What every stage shares: its context, model calls through the cached-model layer, and token accounting."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, TypeVar

from overrefusal.backends import Backend, backends
from overrefusal.cached_model import CachedModel
from overrefusal.generation.checks import Check, status
from overrefusal.generation.config import ModelSpec, PipelineConfig
from overrefusal.generation.records_store import GenerationStore
from overrefusal.generation.taxonomy import Taxonomy, load_taxonomy
from overrefusal.hashing import content_hash
from overrefusal.records import GenerateParams, Message, Query, Response
from overrefusal.store import Store

T = TypeVar("T")


@dataclass
class Usage:
    """Model calls and tokens of one stage (cached answers are counted apart from new requests)."""

    requests_sent: int = 0
    responses_cached: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    sent_prompt_tokens: int = 0
    sent_completion_tokens: int = 0

    def add(self, responses: Sequence[Response]) -> None:
        """Count ``responses`` (one per query answered)."""
        for r in responses:
            if not r.ok:
                self.errors += 1
            if r.cached:
                self.responses_cached += 1
            else:
                self.requests_sent += 1
                self.sent_prompt_tokens += r.usage.prompt_tokens
                self.sent_completion_tokens += r.usage.completion_tokens
            self.prompt_tokens += r.usage.prompt_tokens
            self.completion_tokens += r.usage.completion_tokens

    def as_dict(self) -> dict[str, int]:
        """Plain dict for stage reports."""
        return dict(self.__dict__)


@dataclass
class Stage:
    """Context of one stage run."""

    config: PipelineConfig
    store: Store
    progress: bool = True
    usage: Usage = field(default_factory=Usage)
    models: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def records(self) -> GenerationStore:
        """The project's generation records."""
        return GenerationStore(self.store, self.config.project)

    @property
    def taxonomy(self) -> Taxonomy:
        """The full taxonomy (moderators see all of it)."""
        path = self.config.path(self.config.taxonomy) if self.config.taxonomy else None
        return load_taxonomy(path)

    @property
    def categories(self) -> Taxonomy:
        """The categories this project generates."""
        return self.taxonomy.subset(self.config.categories)

    def backend(self, role: str, spec: ModelSpec) -> Backend:
        """Create the backend of ``spec`` and remember it (by role) for the stage report."""
        backend = backends.create(spec.backend, **spec.args)
        self.models[role] = dict(backend.identity)
        return backend

    async def ask(self, backend: Backend, queries: Sequence[Query]) -> list[Response]:
        """Answer ``queries`` through the store (cache hits are free; new answers commit on arrival)."""
        if not queries:
            return []
        responses = await CachedModel(backend, self.store, progress=self.progress).answer(queries)
        self.usage.add(responses)
        return responses

    def report(self, stage: str, checks: Sequence[Check] = (), **details: Any) -> dict[str, Any]:
        """Save and return the stage report: usage, models, the checks and their status, the stage's own details."""
        body = {
            "stage": stage,
            "project": self.config.project,
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "usage": self.usage.as_dict(),
            "models": self.models,
            "checks": [c.as_dict() for c in checks],
            "status": status(list(checks), self.config.checks),
            **details,
        }
        self.records.put_stage(stage, body)
        return body


def user_query(prompt_id: str, text: str, *, temperature: float, max_tokens: int, seed: int) -> Query:
    """A single-user-message query; ``seed`` carries the attempt index so retries differ but reruns repeat."""
    params = GenerateParams(temperature=temperature, max_tokens=max_tokens, seed=seed)
    return Query(prompt_id=prompt_id, messages=(Message(role="user", content=text),), params=params)


def record_id(project: str, kind: str, text: str) -> str:
    """Stable id of a generated text within a project."""
    return content_hash({"project": project, "kind": kind, "text": text})[:16]


def run_async(factory: Callable[[], Awaitable[T]]) -> T:
    """Run a stage coroutine to completion."""

    async def main() -> T:
        return await factory()

    return asyncio.run(main())


async def close_all(items: Sequence[Backend]) -> None:
    """Close backends, once each."""
    seen: set[int] = set()
    for item in items:
        if id(item) not in seen:
            seen.add(id(item))
            await item.aclose()


def funnel(entered: int, kept: int, dropped: dict[str, int]) -> dict[str, Any]:
    """One category's line of a stage: how many prompts came in, how many it kept, why the rest went."""
    return {"in": entered, "kept": kept, "dropped": {k: v for k, v in dropped.items() if v}}


def orbench_csv(rows: list[dict[str, str]]) -> str:
    """Rows as CSV in the OR-Bench layout: ``prompt,category``."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["prompt", "category"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
