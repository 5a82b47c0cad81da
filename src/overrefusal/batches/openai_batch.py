"""OpenAI's Files and Batches endpoints: a JSONL request file per batch, its output and error files.

The same JSONL layout is what ``vllm run-batch`` reads and writes (see :mod:`overrefusal.batches.files`).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from overrefusal.backends.chat_format import chat_completion_response
from overrefusal.backends.http import Call, Failure
from overrefusal.backends.openai_compat import OpenAIBackend, provider_refusal_code
from overrefusal.batches.api import BatchApi, Poll
from overrefusal.batches.jobs import BatchJob, BatchRequest
from overrefusal.records import Query, Response, ResponseError

CHAT_URL = "/v1/chat/completions"
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
LIST_PAGES = 10
"""Pages of the batch list read when looking for a submission whose id was never recorded."""


def request_line(custom_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """One line of an OpenAI batch input file."""
    return {"custom_id": custom_id, "method": "POST", "url": CHAT_URL, "body": dict(body)}


def parse_result(line: Mapping[str, Any], request: BatchRequest, model: str) -> Response:
    """The answer in one line of an OpenAI batch output (or error) file; errors as errors."""

    def failed(kind: str, message: str) -> Response:
        error = ResponseError(kind=kind, message=message[:300])
        return Response(key=request.key, prompt_id=request.prompt_id, model=model, sample=request.sample, error=error)

    error = line.get("error")
    if isinstance(error, dict):
        code = str(error.get("code") or "error")
        return failed(code if code.startswith("batch_") else f"batch_{code}", str(error.get("message") or code))
    response = line.get("response")
    if not isinstance(response, dict):
        return failed("bad_response", f"no response in the batch result: {json.dumps(line)[:120]}")
    status = int(response.get("status_code") or 0)
    body = response.get("body")
    if status == 200 and isinstance(body, dict):
        try:
            answer = chat_completion_response(
                body, key=request.key, prompt_id=request.prompt_id, model=model, latency_s=0
            )
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            return failed("bad_response", f"malformed answer ({type(exc).__name__}): {json.dumps(body)[:120]}")
        return answer.model_copy(update={"sample": request.sample}) if request.sample else answer
    refusal = provider_refusal_code(Failure(status, body))
    if refusal is not None:
        return Response(
            key=request.key,
            prompt_id=request.prompt_id,
            model=model,
            sample=request.sample,
            finish_reason="content_filter",
            provider_refusal=refusal,
        )
    return failed(f"http_{status}", f"HTTP {status}: {json.dumps(body)[:200]}")


def _multipart(fields: Mapping[str, str], filename: str, content: bytes) -> tuple[bytes, str]:
    """A multipart/form-data body with text ``fields`` and one file; returns (body, content type)."""
    boundary = "overrefusal-" + secrets.token_hex(12)
    parts: list[bytes] = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: application/jsonl\r\n\r\n".encode()
    )
    parts.append(content)
    parts.append(f"\r\n--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


class OpenAIBatches(BatchApi):
    """``POST /files`` (purpose ``batch``), ``POST /batches``, ``GET /batches/{id}``, ``GET /files/{id}/content``."""

    name: ClassVar[str] = "openai"
    max_requests: ClassVar[int] = 50_000
    max_bytes: ClassVar[int] = 190 * 1024 * 1024  # the limit is 200 MB a file

    backend: OpenAIBackend

    def line(self, request: BatchRequest, query: Query) -> dict[str, Any]:
        """The request line: the chat-completions body the backend would POST."""
        return request_line(request.custom_id, self.backend.request_body(query))

    async def submit(self, job: BatchJob, lines: Sequence[Mapping[str, Any]]) -> str:
        """Upload the request file, then create the batch (tagged with the job id in its metadata)."""
        content = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
        body, content_type = _multipart({"purpose": "batch"}, f"{job.id}.jsonl", content)
        file_id = await self.call(
            "uploading the batch file",
            "/files",
            Call(payload=body, content_type=content_type),
            lambda data: str(data["id"]),
        )
        job.files["input"] = file_id
        create = {
            "input_file_id": file_id,
            "endpoint": CHAT_URL,
            "completion_window": "24h",
            "metadata": {"overrefusal_job": job.id},
        }
        return await self.call(
            "creating the batch", "/batches", Call(payload=json.dumps(create).encode()), lambda d: str(d["id"])
        )

    async def find(self, job: BatchJob, known: set[str]) -> str | None:
        """Look for the job's id in the metadata of the batches listed (newest first)."""
        after: str | None = None
        for _ in range(LIST_PAGES):
            path = "/batches?limit=100" + (f"&after={after}" if after else "")
            page = await self.call("listing batches", path, Call(method="GET"), lambda d: dict(d))
            data = page.get("data") or []
            for batch in data:
                if (batch.get("metadata") or {}).get("overrefusal_job") == job.id:
                    return str(batch["id"])
            if not page.get("has_more") or not data:
                return None
            if min(int(b.get("created_at") or 0) for b in data) < job.submitted - 3600:
                return None
            after = str(data[-1]["id"])
        return None

    async def poll(self, job: BatchJob) -> Poll:
        """``GET /batches/{id}``."""
        data = await self.call("reading the batch status", f"/batches/{job.remote_id}", Call(method="GET"), dict)
        counts = {k: int(v) for k, v in (data.get("request_counts") or {}).items() if isinstance(v, int)}
        status = str(data.get("status"))
        files = {name: str(data[f"{name}_file_id"]) for name in ("output", "error") if data.get(f"{name}_file_id")}
        errors = (data.get("errors") or {}).get("data") or []
        problem = "; ".join(str(e.get("message") or e.get("code")) for e in errors[:3] if isinstance(e, dict))
        return Poll(
            status=status,
            counts=counts,
            settled=counts.get("completed", 0) + counts.get("failed", 0),
            finished=status in TERMINAL,
            files=files,
            problem=problem,
        )

    async def results(self, job: BatchJob, requests: Mapping[str, BatchRequest]) -> dict[str, Response]:
        """Download the output file and the error file; parse every line whose custom id is ours."""
        out: dict[str, Response] = {}
        for name in ("output", "error"):
            file_id = job.files.get(name)
            if not file_id:
                continue
            raw = await self.call(
                f"downloading the batch {name} file", f"/files/{file_id}/content", Call(method="GET", raw=True), bytes
            )
            self.read_results(raw, requests, parse_result, out)
        return out
