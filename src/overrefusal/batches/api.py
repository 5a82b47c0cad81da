"""What every provider batch API offers: submit a request file, poll it, download its results."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from overrefusal.backends.http import Call, HttpBackend
from overrefusal.batches.jobs import BatchJob, BatchRequest
from overrefusal.errors import RunStopped
from overrefusal.records import Query, Response, ResponseError

T = TypeVar("T")


@dataclass(frozen=True)
class Poll:
    """A batch's state as the provider reports it."""

    status: str
    counts: dict[str, int]
    settled: int
    """Requests finished so far, whatever their outcome (for the progress bar)."""
    finished: bool
    """The batch will not change any more: its results can be downloaded."""
    files: dict[str, str] = field(default_factory=dict)
    problem: str = ""
    """Why a batch failed as a whole (the provider's message), or ''."""


class BatchApi(ABC):
    """One provider's batch endpoints, spoken through the backend's HTTP transport (its key, retries, redaction).

    Args:
        backend: the backend whose model, request bodies, base URL and key the batches use.
    """

    name: ClassVar[str]
    max_requests: ClassVar[int]
    """Most requests one batch may hold."""
    max_bytes: ClassVar[int]
    """Largest request file (or body) one batch may have."""

    def __init__(self, backend: HttpBackend) -> None:
        """Use ``backend``'s transport and request bodies."""
        self.backend = backend
        self.transport = backend.transport
        self.endpoint = backend.settings.base_urls[0]

    @abstractmethod
    def line(self, request: BatchRequest, query: Query) -> dict[str, Any]:
        """The batch entry of one request."""

    @abstractmethod
    async def submit(self, job: BatchJob, lines: Sequence[Mapping[str, Any]]) -> str:
        """Submit a batch of ``lines``; return the provider's batch id."""

    @abstractmethod
    async def find(self, job: BatchJob, known: set[str]) -> str | None:
        """The provider id of ``job`` if its submission reached the provider (its id was never recorded)."""

    @abstractmethod
    async def poll(self, job: BatchJob) -> Poll:
        """The batch's state now."""

    @abstractmethod
    async def results(self, job: BatchJob, requests: Mapping[str, BatchRequest]) -> dict[str, Response]:
        """The answers of a finished batch, by custom id (requests without a result are left out)."""

    def size(self, line: Mapping[str, Any]) -> int:
        """Bytes ``line`` takes in the request file."""
        return len(json.dumps(line).encode()) + 1

    async def call(self, what: str, path: str, call: Call, parse: Callable[[Any], T]) -> T:
        """One management request; a failure after the transport's retries stops the run with ``what`` failed."""
        result = await self.transport.request(path, call, parse)
        if isinstance(result, ResponseError):
            raise RunStopped(
                f"{what} at {self.endpoint} failed ({result.message}): check that the server offers the "
                f"{self.name} batch API (or drop --batch), then run the same command again to continue"
            )
        return result

    def read_results(
        self,
        raw: bytes,
        requests: Mapping[str, BatchRequest],
        parse: Callable[[Mapping[str, Any], BatchRequest, str], Response],
        into: dict[str, Response],
    ) -> None:
        """Parse each JSONL line of ``raw`` whose custom id is one of ``requests`` into ``into`` (first one wins)."""
        for text in raw.decode("utf-8", "replace").splitlines():
            try:
                line = json.loads(text) if text.strip() else None
            except ValueError:
                continue
            request = requests.get(str(line.get("custom_id"))) if isinstance(line, dict) else None
            if request is not None and request.custom_id not in into:
                into[request.custom_id] = parse(line, request, self.backend.model)  # type: ignore[arg-type]

    def error(self, request: BatchRequest, kind: str, message: str) -> Response:
        """The stored error of a request the batch did not answer."""
        return Response(
            key=request.key,
            prompt_id=request.prompt_id,
            model=self.backend.model,
            sample=request.sample,
            error=ResponseError(kind=kind, message=message[:300]),
        )
