"""Anthropic's Message Batches: ``POST /v1/messages/batches``, poll, then the JSONL results."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar

from overrefusal.backends.anthropic import AnthropicBackend, message_response
from overrefusal.backends.http import Call
from overrefusal.batches.api import BatchApi, Poll
from overrefusal.batches.jobs import BatchJob, BatchRequest
from overrefusal.records import Query, Response, ResponseError

PATH = "/v1/messages/batches"
SETTLED = ("succeeded", "errored", "canceled", "expired")
FIND_WINDOW_S = 600.0
"""A batch created this long before or after a job's submission was written may be that job's."""


def _epoch(value: object) -> float | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def parse_result(line: Mapping[str, Any], request: BatchRequest, model: str) -> Response:
    """The answer in one line of a Message Batches result file; errors, expiries and cancellations as errors."""

    def failed(kind: str, message: str) -> Response:
        error = ResponseError(kind=kind, message=message[:300])
        return Response(key=request.key, prompt_id=request.prompt_id, model=model, sample=request.sample, error=error)

    result = line.get("result") or {}
    kind = result.get("type")
    if kind == "succeeded":
        try:
            answer = message_response(
                result["message"], key=request.key, prompt_id=request.prompt_id, model=model, latency_s=0.0
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            return failed("bad_response", f"malformed answer ({type(exc).__name__}): {json.dumps(result)[:120]}")
        return answer.model_copy(update={"sample": request.sample}) if request.sample else answer
    if kind == "errored":
        error = (result.get("error") or {}).get("error") or result.get("error") or {}
        return failed(f"batch_{error.get('type') or 'error'}", str(error.get("message") or "the request failed"))
    if kind in ("expired", "canceled"):
        return failed(f"batch_{kind}", f"the batch {kind} before this request was processed")
    return failed("bad_response", f"unknown result type in the batch results: {json.dumps(line)[:120]}")


class AnthropicBatches(BatchApi):
    """Message Batches of the ``anthropic`` backend's model."""

    name: ClassVar[str] = "anthropic"
    max_requests: ClassVar[int] = 100_000
    max_bytes: ClassVar[int] = 250 * 1024 * 1024  # the limit is 256 MB a batch

    backend: AnthropicBackend

    def line(self, request: BatchRequest, query: Query) -> dict[str, Any]:
        """``{"custom_id", "params"}`` with the Messages body the backend would POST."""
        return {"custom_id": request.custom_id, "params": self.backend.request_body(query)}

    async def submit(self, job: BatchJob, lines: Sequence[Mapping[str, Any]]) -> str:
        """Create the batch with every request in its body."""
        body = json.dumps({"requests": list(lines)}).encode()
        return await self.call("creating the message batch", PATH, Call(payload=body), lambda d: str(d["id"]))

    async def find(self, job: BatchJob, known: set[str]) -> str | None:
        """A listed batch of the same size created around the job's submission, unless another job has it."""
        page = await self.call("listing message batches", f"{PATH}?limit=100", Call(method="GET"), dict)
        matches = []
        for batch in page.get("data") or []:
            created = _epoch(batch.get("created_at"))
            counts = batch.get("request_counts") or {}
            total = sum(int(counts.get(name) or 0) for name in ("processing", *SETTLED))
            if (
                str(batch.get("id")) not in known
                and created is not None
                and abs(created - job.submitted) <= FIND_WINDOW_S
                and total == job.total
            ):
                matches.append(str(batch["id"]))
        return matches[0] if len(matches) == 1 else None

    async def poll(self, job: BatchJob) -> Poll:
        """``GET /v1/messages/batches/{id}``."""
        data = await self.call("reading the batch status", f"{PATH}/{job.remote_id}", Call(method="GET"), dict)
        counts = {k: int(v) for k, v in (data.get("request_counts") or {}).items() if isinstance(v, int)}
        status = str(data.get("processing_status"))
        return Poll(
            status=status,
            counts=counts,
            settled=sum(counts.get(name, 0) for name in SETTLED),
            finished=status == "ended",
            files={"results": str(data["results_url"])} if data.get("results_url") else {},
        )

    async def results(self, job: BatchJob, requests: Mapping[str, BatchRequest]) -> dict[str, Response]:
        """Download the results (from the base URL's own origin: the key never goes elsewhere)."""
        raw = await self.call(
            "downloading the batch results", f"{PATH}/{job.remote_id}/results", Call(method="GET", raw=True), bytes
        )
        out: dict[str, Response] = {}
        self.read_results(raw, requests, parse_result, out)
        return out
