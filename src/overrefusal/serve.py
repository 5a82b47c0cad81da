"""Serve the embedded model over the OpenAI-compatible protocol, so the HTTP path runs on a real model.

``POST /v1/chat/completions`` (non-streaming), ``GET /v1/models`` and ``GET /health``. One request is
computed at a time (llama.cpp's context is not re-entrant); others wait their turn.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from overrefusal.backends.embedded import EmbeddedBackend
from overrefusal.errors import RunError


def _error(status: int, message: str, kind: str = "invalid_request_error") -> web.Response:
    return web.json_response({"error": {"message": message, "type": kind}}, status=status)


def create_app(backend: EmbeddedBackend) -> web.Application:
    """The aiohttp application answering with ``backend``."""
    lock = asyncio.Lock()

    async def chat(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            return _error(400, "the body is not JSON")
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body["messages"]:
            return _error(400, "'messages' must be a non-empty list")
        if body.get("stream"):
            return _error(400, "streaming is not supported: send stream=false")
        body.pop("model", None)
        body.setdefault("max_tokens", backend.default_max_tokens)
        async with lock:
            try:
                result = await asyncio.to_thread(backend.complete, body)
            except RunError as exc:
                return _error(500, str(exc), "server_error")
            except Exception as exc:  # a bad request body the model rejects
                return _error(400, f"{type(exc).__name__}: {exc}"[:300])
        if "error" in result:
            return _error(400, json.dumps(result["error"])[:300])
        result["model"] = backend.model
        result.setdefault("object", "chat.completion")
        result.setdefault("created", int(time.time()))
        return web.json_response(result)

    async def models(request: web.Request) -> web.Response:
        return web.json_response(
            {"object": "list", "data": [{"id": backend.model, "object": "model", "owned_by": "overrefusal"}]}
        )

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application(client_max_size=4 * 1024 * 1024)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/health", health)
    return app


async def serve(
    backend: EmbeddedBackend,
    host: str = "127.0.0.1",
    port: int = 0,
    ready: Callable[[str], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve until ``stop`` is set (or forever); ``ready`` receives the base URL once listening.

    Raises:
        RunError: the address cannot be bound.
    """
    runner = web.AppRunner(create_app(backend), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            raise RunError(f"cannot listen on {host}:{port} ({exc.strerror}): choose another --port") from None
        bound: Any = runner.addresses[0]
        shown = f"[{bound[0]}]" if ":" in str(bound[0]) else bound[0]
        if ready is not None:
            ready(f"http://{shown}:{bound[1]}/v1")
        await (stop or asyncio.Event()).wait()
    finally:
        await runner.cleanup()
        await backend.aclose()
