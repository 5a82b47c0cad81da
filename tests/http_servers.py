"""Local test servers speaking OpenAI's chat-completions and Anthropic's Messages protocols.

``ScriptedServer`` runs an aiohttp app on 127.0.0.1 (free port) in a background thread, with
scripted latency and faults, and counts successful answers per prompt text. Run as a script
(``python tests/http_servers.py --latency 0.02``) it serves in the foreground and prints its
port on the first line, for benchmarks that need the server in another process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import socket
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from aiohttp import web

FAULTS = ("http_500", "http_429", "reset", "malformed", "timeout")

FAULT_MIX = {"http_500": 0.10, "http_429": 0.05, "reset": 0.02, "malformed": 0.01, "timeout": 0.01}
"""The acceptance mix: 10% HTTP 500, 5% 429 with Retry-After, 2% resets, 1% malformed JSON, 1% timeouts."""


@contextlib.contextmanager
def dead_url() -> Iterator[str]:
    """A base URL where every connection is refused, for as long as the block runs.

    The port stays bound (but never listens), so no other process can take it meanwhile: a port
    found free and then released could be reused by anything before the test connects.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


def default_reply(text: str) -> tuple[str, str]:
    """(answer, finish reason): ``[filter]`` trips the content filter, ``hurt`` is refused."""
    if "[filter]" in text:
        return "", "content_filter"
    if "hurt" in text:
        return "I'm sorry, but I can't help with that.", "stop"
    return f"Sure. Here is how: {text[:20]}", "stop"


class ScriptedServer:
    """An OpenAI- and Anthropic-compatible server with scripted latency and faults.

    Attributes:
        successes: successful answers per prompt text.
        attempts: requests received per prompt text.
        auth: the authentication headers received (for key-handling tests).
    """

    def __init__(
        self,
        latency_s: float = 0.0,
        faults: dict[str, float] | None = None,
        seed: int = 0,
        timeout_sleep_s: float = 1.0,
        retry_after: str = "0",
        reply: Callable[[str], tuple[str, str]] = default_reply,
        hold_after: int | None = None,
        error_status: int | None = None,
        reply_json: object = None,
        error_pad: int = 0,
        answer: Callable[[str, str, dict[str, Any]], tuple[int, dict[str, Any]] | None] | None = None,
        error_body: dict[str, Any] | None = None,
        models: list[str] | None = None,
        redirect_to: str | None = None,
        die_after: int | None = None,
        error_when: Callable[[str], bool] | None = None,
    ) -> None:
        self.latency_s = latency_s
        self.faults = dict(faults or {})
        self.rng = random.Random(seed)
        self.timeout_sleep_s = timeout_sleep_s
        self.retry_after = retry_after
        self.reply = reply
        self.hold_after = hold_after
        self.error_status = error_status
        self.reply_json = reply_json
        self.error_pad = error_pad
        """Characters of filler before the echoed credentials in error messages."""
        self.answer = answer
        """(protocol ``openai``/``anthropic``, prompt text, request body) -> (status, JSON body) to send,
        or None for the default answer: scripts reasoning formats and provider refusals."""
        self.error_body = error_body
        """The body of ``error_status`` answers (instead of one echoing the credentials)."""
        self.models = models
        """Served models: others get 404 model_not_found, and ``GET /v1/models`` lists these."""
        self.redirect_to = redirect_to
        """Answer every POST with a 307 to this origin (``http://host:port``) plus the request's path."""
        self.die_after = die_after
        """Stop listening (connections refused from then on) after this many answers."""
        self.error_when = error_when
        """Answer ``error_status`` only for the prompts this accepts (all when None)."""
        self.model_lists = 0
        self.flight: list[tuple[str, int]] = []
        """(``start`` or ``end``, requests then in flight) at each arrival in and departure from the latency wait."""
        self._in_flight = 0
        self._dead = False
        self.auth_seen: list[str] = []
        """The authentication headers of every request received."""
        self.successes: Counter[str] = Counter()
        self.attempts: Counter[str] = Counter()
        self.fault_counts: Counter[str] = Counter()
        self.auth: list[str] = []
        self.bodies: list[dict[str, Any]] = []
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._release: asyncio.Event | None = None
        self._lock = threading.Lock()

    # urls --------------------------------------------------------------------------------
    @property
    def openai_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def anthropic_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # app ---------------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._openai)
        app.router.add_post("/v1/messages", self._anthropic)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/stats", self._stats)
        return app

    async def _models(self, request: web.Request) -> web.StreamResponse:
        self.model_lists += 1
        if self.models is None:
            return web.json_response({"error": {"message": "not found"}}, status=404)
        return web.json_response({"object": "list", "data": [{"id": m, "object": "model"} for m in self.models]})

    async def _stats(self, request: web.Request) -> web.StreamResponse:
        """Counts for benchmarks that run the server in another process."""
        with self._lock:
            return web.json_response({"successes": dict(self.successes), "attempts": sum(self.attempts.values())})

    def _die(self) -> None:
        """Stop accepting connections and drop the open ones, like a killed server."""
        assert self._runner is not None
        if self._dead:
            return
        self._dead = True
        for site in list(self._runner.sites):
            asyncio.ensure_future(site.stop())
        server = self._runner.server
        if server is not None:
            for conn in list(server.connections):
                conn.force_close()

    def _pick_fault(self) -> str | None:
        roll = self.rng.random()
        total = 0.0
        for name in FAULTS:
            total += self.faults.get(name, 0.0)
            if roll < total:
                return name
        return None

    async def _common(self, request: web.Request, text: str) -> web.StreamResponse | None:
        """Latency, hold and faults; None means answer normally."""
        with self._lock:
            self.attempts[text] += 1
            fault = self._pick_fault()
            if fault:
                self.fault_counts[fault] += 1
        self.auth_seen.append(request.headers.get("Authorization", "") + request.headers.get("x-api-key", ""))
        if self.redirect_to is not None:
            raise web.HTTPTemporaryRedirect(self.redirect_to + request.path)
        if self.die_after is not None and sum(self.successes.values()) >= self.die_after:
            self._die()
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=500)
        body = await request.json()
        model = body.get("model")
        if self.models is not None and model not in self.models:
            message = f"The model `{model}` does not exist or you do not have access to it."
            error = {"message": message, "type": "invalid_request_error", "code": "model_not_found"}
            return web.json_response({"error": error}, status=404)
        erring = self.error_status is not None and (self.error_when is None or self.error_when(text))
        if erring and self.error_body is not None:
            headers = {"Retry-After": self.retry_after} if self.error_status == 429 else None
            return web.json_response(self.error_body, status=self.error_status, headers=headers)
        if erring:  # an error that echoes the credentials, like careless servers do
            auth = request.headers.get("Authorization", "") + request.headers.get("x-api-key", "")
            message = "x" * self.error_pad + f" denied: {auth}"
            return web.json_response({"error": {"message": message}}, status=self.error_status)
        if self.latency_s:
            with self._lock:
                self._in_flight += 1
                self.flight.append(("start", self._in_flight))
            try:
                await asyncio.sleep(self.latency_s)
            finally:
                with self._lock:
                    self._in_flight -= 1
                    self.flight.append(("end", self._in_flight))
        if self.hold_after is not None and sum(self.successes.values()) >= self.hold_after:
            assert self._release is not None
            await self._release.wait()
            if request.transport is None or request.transport.is_closing():
                return web.Response(status=499)  # the client is gone: nothing was delivered, nothing counted
        if fault == "http_500":
            return web.json_response({"error": {"message": "internal error"}}, status=500)
        if fault == "http_429":
            return web.json_response(
                {"error": {"message": "rate limited"}}, status=429, headers={"Retry-After": self.retry_after}
            )
        if fault == "malformed":
            return web.Response(body=b'{"choices": [', content_type="application/json")
        if fault == "reset":
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=500)
        if fault == "timeout":
            await asyncio.sleep(self.timeout_sleep_s)
            return web.json_response({"error": {"message": "too late"}}, status=504)
        return None

    def _count(self, request: web.Request, text: str) -> None:
        with self._lock:
            self.successes[text] += 1
            self.auth.append(request.headers.get("Authorization", "") + request.headers.get("x-api-key", ""))

    async def _openai(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.bodies.append(body)
        text = body["messages"][-1]["content"]
        faulty = await self._common(request, text)
        if faulty is not None:
            return faulty
        if self.reply_json is not None:  # a 200 answer of the wrong shape
            return web.json_response(self.reply_json)
        scripted = self.answer("openai", text, body) if self.answer is not None else None
        if scripted is not None:
            self._count(request, text)
            return web.json_response(scripted[1], status=scripted[0])
        answer, reason = self.reply(text)
        self._count(request, text)
        return web.json_response(
            {
                "id": "chatcmpl-test",
                "object": "chat.completion",
                "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": reason}],
                "created": 0,
                "usage": {
                    "prompt_tokens": len(text.split()),
                    "completion_tokens": len(answer.split()),
                    "total_tokens": len(text.split()) + len(answer.split()),
                },
            }
        )

    async def _anthropic(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.bodies.append(body)
        if request.headers.get("anthropic-version") != "2023-06-01":
            return web.json_response({"type": "error", "error": {"message": "version"}}, status=400)
        text = body["messages"][-1]["content"]
        faulty = await self._common(request, text)
        if faulty is not None:
            return faulty
        scripted = self.answer("anthropic", text, body) if self.answer is not None else None
        if scripted is not None:
            self._count(request, text)
            return web.json_response(scripted[1], status=scripted[0])
        answer, reason = self.reply(text)
        stop = "refusal" if reason == "content_filter" else "end_turn"
        self._count(request, text)
        content = [{"type": "text", "text": answer}] if answer else []
        return web.json_response(
            {
                "id": "msg_test",
                "type": "message",
                "role": "assistant",
                "model": body["model"],
                "content": content,
                "stop_reason": stop,
                "usage": {"input_tokens": len(text.split()), "output_tokens": len(answer.split())},
            }
        )

    # lifecycle ---------------------------------------------------------------------------
    async def _start(self, port: int = 0) -> None:
        self._release = asyncio.Event()
        self._runner = web.AppRunner(self.app(), access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def start(self) -> ScriptedServer:
        """Serve in a background thread until :meth:`stop`."""
        ready = threading.Event()

        def main() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            loop.run_until_complete(self._start())
            ready.set()
            loop.run_forever()
            assert self._runner is not None
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=main, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def release(self) -> None:
        """Answer held requests and stop holding."""
        self.hold_after = None
        if self._loop is not None and self._release is not None:
            self._loop.call_soon_threadsafe(self._release.set)

    def stop(self) -> None:
        self.release()
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--faults", default="", help="JSON object of fault -> probability")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout-sleep", type=float, default=1.0, help="how long a 'timeout' fault hangs")
    args = parser.parse_args()
    server = ScriptedServer(
        latency_s=args.latency,
        faults=json.loads(args.faults) if args.faults else None,
        seed=args.seed,
        timeout_sleep_s=args.timeout_sleep,
    )

    async def serve() -> None:
        await server._start()
        print(server.port, flush=True)
        await asyncio.Event().wait()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
