"""A local server implementing OpenAI's Files + Batches and Anthropic's Message Batches endpoints.

Batches move forward only when polled: each status request processes ``per_poll`` more requests
(answered like :func:`http_servers.default_reply`), so tests control how far a batch has got.
``expire_after`` lets a batch expire half-done, ``fail_validation`` fails it whole, and
``hang_create`` creates the batch but holds the answer (a client killed then never learns its id).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import Counter
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from http_servers import ScriptedServer


class _Batch:
    def __init__(self, kind: str, bid: str, lines: list[dict[str, Any]], metadata: dict[str, Any]) -> None:
        self.kind = kind
        self.id = bid
        self.lines = lines
        self.metadata = metadata
        self.done: list[dict[str, Any]] = []  # result lines
        self.status = "in_progress"
        self.created = time.time()
        self.polls = 0

    @property
    def processed(self) -> int:
        return len(self.done)


class BatchServer(ScriptedServer):
    """Serves chat completions and messages (the per-request path) and their batch APIs."""

    def __init__(
        self,
        per_poll: int = 1000,
        expire_after: int | None = None,
        fail_validation: bool = False,
        hang_create: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.per_poll = per_poll
        self.expire_after = expire_after
        self.fail_validation = fail_validation
        self.hang_create = hang_create
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, _Batch] = {}
        self.submitted: Counter[str] = Counter()
        """Times each custom id was submitted in a batch (never more than once, the tests say)."""
        self.batch_answers: Counter[str] = Counter()
        """Answers produced per prompt text by batches."""
        self.polls = 0
        self.created = 0
        self._ids = itertools.count(1)

    def app(self) -> web.Application:
        app = super().app()
        app.router.add_post("/v1/files", self._upload)
        app.router.add_get("/v1/files/{fid}/content", self._content)
        app.router.add_post("/v1/batches", self._create_openai)
        app.router.add_get("/v1/batches", self._list_openai)
        app.router.add_get("/v1/batches/{bid}", self._get_openai)
        app.router.add_post("/v1/messages/batches", self._create_anthropic)
        app.router.add_get("/v1/messages/batches", self._list_anthropic)
        app.router.add_get("/v1/messages/batches/{bid}", self._get_anthropic)
        app.router.add_get("/v1/messages/batches/{bid}/results", self._results_anthropic)
        return app

    # processing ---------------------------------------------------------------------------
    def _advance(self, batch: _Batch) -> None:
        """Process ``per_poll`` more requests; expire or complete the batch when its time comes."""
        batch.polls += 1
        self.polls += 1
        if batch.status != "in_progress":
            return
        if self.fail_validation:
            batch.status = "failed"
            return
        stop = min(len(batch.lines), batch.processed + self.per_poll)
        if self.expire_after is not None:
            stop = min(stop, self.expire_after)
        for line in batch.lines[batch.processed : stop]:
            batch.done.append(self._answer(batch.kind, line))
        if self.expire_after is not None and batch.processed >= self.expire_after < len(batch.lines):
            batch.status = "expired"
        elif batch.processed == len(batch.lines):
            batch.status = "completed" if batch.kind == "openai" else "ended"

    def _answer(self, kind: str, line: dict[str, Any]) -> dict[str, Any]:
        body = line["body"] if kind == "openai" else line["params"]
        text = body["messages"][-1]["content"]
        cid = line["custom_id"]
        failing = self.error_when is not None and self.error_when(text)
        if not failing:
            self.batch_answers[text] += 1
        answer, reason = self.reply(text)
        if kind == "openai":
            if failing:
                error = {"error": {"message": "internal error", "type": "server_error"}}
                return {"id": f"req_{cid}", "custom_id": cid, "response": {"status_code": 500, "body": error}}
            completion = {
                "id": "chatcmpl-batch",
                "object": "chat.completion",
                "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": reason}],
                "usage": {"prompt_tokens": len(text.split()), "completion_tokens": len(answer.split())},
            }
            return {
                "id": f"req_{cid}",
                "custom_id": cid,
                "response": {"status_code": 200, "body": completion},
                "error": None,
            }
        if failing:
            error = {"type": "error", "error": {"type": "api_error", "message": "internal error"}}
            return {"custom_id": cid, "result": {"type": "errored", "error": error}}
        stop = "refusal" if reason == "content_filter" else "end_turn"
        message = {
            "id": "msg_batch",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [{"type": "text", "text": answer}] if answer else [],
            "stop_reason": stop,
            "usage": {"input_tokens": len(text.split()), "output_tokens": len(answer.split())},
        }
        return {"custom_id": cid, "result": {"type": "succeeded", "message": message}}

    def _register(self, kind: str, lines: list[dict[str, Any]], metadata: dict[str, Any]) -> _Batch:
        prefix = "batch_" if kind == "openai" else "msgbatch_"
        batch = _Batch(kind, f"{prefix}{next(self._ids):04d}", lines, metadata)
        for line in lines:
            self.submitted[line["custom_id"]] += 1
        self.batches[batch.id] = batch
        self.created += 1
        return batch

    async def _hang(self) -> None:
        if self.hang_create:
            await asyncio.sleep(3600)

    # OpenAI -------------------------------------------------------------------------------
    async def _upload(self, request: web.Request) -> web.StreamResponse:
        self.auth_seen.append(request.headers.get("Authorization", ""))
        form = await request.post()
        if form.get("purpose") != "batch":
            return web.json_response({"error": {"message": "purpose must be batch"}}, status=400)
        upload = form["file"]
        assert isinstance(upload, web.FileField)
        fid = f"file-{next(self._ids):04d}"
        self.files[fid] = upload.file.read()
        return web.json_response({"id": fid, "object": "file", "purpose": "batch"})

    def _openai_object(self, batch: _Batch) -> dict[str, Any]:
        failed = sum(1 for d in batch.done if d.get("response", {}).get("status_code") != 200)
        obj: dict[str, Any] = {
            "id": batch.id,
            "object": "batch",
            "endpoint": "/v1/chat/completions",
            "status": batch.status,
            "created_at": int(batch.created),
            "metadata": batch.metadata,
            "request_counts": {"total": len(batch.lines), "completed": batch.processed - failed, "failed": failed},
            "output_file_id": None,
            "error_file_id": None,
        }
        if batch.status == "failed":
            obj["errors"] = {"data": [{"code": "invalid_request", "message": "the model does not support batches"}]}
        if batch.status in ("completed", "expired"):
            good = [d for d in batch.done if d["response"]["status_code"] == 200]
            bad = [d for d in batch.done if d["response"]["status_code"] != 200]
            if batch.status == "expired":
                for line in batch.lines[batch.processed :]:
                    error = {
                        "code": "batch_expired",
                        "message": "This request could not be executed before the completion window expired.",
                    }
                    bad.append({"id": "x", "custom_id": line["custom_id"], "response": None, "error": error})
            for name, rows in (("output", good), ("error", bad)):
                if rows:
                    fid = f"file-{batch.id}-{name}"
                    self.files[fid] = b"".join(json.dumps(r).encode() + b"\n" for r in rows)
                    obj[f"{name}_file_id"] = fid
        return obj

    async def _create_openai(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        content = self.files.get(body.get("input_file_id"))
        if content is None:
            return web.json_response({"error": {"message": "no such file"}}, status=404)
        lines = [json.loads(x) for x in content.decode().splitlines() if x.strip()]
        batch = self._register("openai", lines, body.get("metadata") or {})
        await self._hang()
        return web.json_response(self._openai_object(batch))

    async def _list_openai(self, request: web.Request) -> web.StreamResponse:
        data = [self._openai_object(b) for b in reversed(self.batches.values()) if b.kind == "openai"]
        return web.json_response({"object": "list", "data": data, "has_more": False})

    async def _get_openai(self, request: web.Request) -> web.StreamResponse:
        batch = self.batches.get(request.match_info["bid"])
        if batch is None:
            return web.json_response({"error": {"message": "no such batch"}}, status=404)
        self._advance(batch)
        return web.json_response(self._openai_object(batch))

    async def _content(self, request: web.Request) -> web.StreamResponse:
        content = self.files.get(request.match_info["fid"])
        if content is None:
            return web.json_response({"error": {"message": "no such file"}}, status=404)
        return web.Response(body=content, content_type="application/jsonl")

    # Anthropic ----------------------------------------------------------------------------
    def _anthropic_object(self, batch: _Batch) -> dict[str, Any]:
        kinds = Counter(d["result"]["type"] for d in batch.done)
        ended = batch.status in ("ended", "expired")
        expired = len(batch.lines) - batch.processed if batch.status == "expired" else 0
        created = datetime.fromtimestamp(batch.created, timezone.utc).isoformat().replace("+00:00", "Z")
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": "ended" if ended else batch.status,
            "created_at": created,
            "request_counts": {
                "processing": 0 if ended else len(batch.lines) - batch.processed,
                "succeeded": kinds["succeeded"],
                "errored": kinds["errored"],
                "canceled": 0,
                "expired": expired,
            },
            "results_url": f"{self.anthropic_url}/v1/messages/batches/{batch.id}/results" if ended else None,
        }

    async def _create_anthropic(self, request: web.Request) -> web.StreamResponse:
        self.auth_seen.append(request.headers.get("x-api-key", ""))
        body = await request.json()
        batch = self._register("anthropic", list(body["requests"]), {})
        await self._hang()
        return web.json_response(self._anthropic_object(batch))

    async def _list_anthropic(self, request: web.Request) -> web.StreamResponse:
        data = [self._anthropic_object(b) for b in reversed(self.batches.values()) if b.kind == "anthropic"]
        return web.json_response({"data": data, "has_more": False})

    async def _get_anthropic(self, request: web.Request) -> web.StreamResponse:
        batch = self.batches.get(request.match_info["bid"])
        if batch is None:
            return web.json_response({"type": "error", "error": {"message": "no such batch"}}, status=404)
        self._advance(batch)
        return web.json_response(self._anthropic_object(batch))

    async def _results_anthropic(self, request: web.Request) -> web.StreamResponse:
        batch = self.batches[request.match_info["bid"]]
        rows = list(batch.done)
        if batch.status == "expired":
            rows += [
                {"custom_id": x["custom_id"], "result": {"type": "expired"}} for x in batch.lines[batch.processed :]
            ]
        return web.Response(
            body=b"".join(json.dumps(r).encode() + b"\n" for r in rows), content_type="application/jsonl"
        )
