"""The ``openai`` backend: chat completions on any OpenAI-compatible server.

vLLM, SGLang, TGI, Ollama, llama.cpp's server, LM Studio and hosted APIs all speak this
protocol; point ``base_url`` at the server's ``/v1``.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

from overrefusal.backends.http import Failure, HttpBackend
from overrefusal.records import Query, Response, Usage


class OpenAIBackend(HttpBackend):
    """Chat completions over HTTP (``POST <base_url>/chat/completions``).

    Args:
        model: the model name as the server knows it (e.g. ``Qwen/Qwen2.5-7B-Instruct``).
        base_url: one base URL or several serving the same model (default ``https://api.openai.com/v1``).
        api_key_env: name of the environment variable holding the API key. Without it,
            ``OPENAI_API_KEY`` is used only for the default (OpenAI) URL; other servers get no key.
        concurrency: requests in flight at once.
        rpm: optional requests-per-minute limit.
        timeout_s: time limit of one attempt.
        max_retries: retries before a request is recorded as an error.
        backoff_s: first retry delay; it doubles on each retry, with jitter, and ``Retry-After`` is honoured.
        extra_body: more JSON fields for every request (e.g. ``{"stop": ["END"]}``); part of the cache key.
    """

    name: ClassVar[str] = "openai"
    default_max_tokens: ClassVar[int] = 512
    default_base_url: ClassVar[str] = "https://api.openai.com/v1"
    default_key_env: ClassVar[str | None] = "OPENAI_API_KEY"

    def request_body(self, query: Query) -> dict[str, Any]:
        """The chat-completions JSON body for ``query``."""
        params = query.params
        body: dict[str, Any] = {
            "model": self._model,
            "messages": [{"role": m.role, "content": m.content} for m in query.messages],
            "max_tokens": params.max_tokens or self.default_max_tokens,
            "temperature": params.temperature,
        }
        if params.top_p is not None:
            body["top_p"] = params.top_p
        if params.seed is not None:
            body["seed"] = params.seed
        body.update(self._extra)
        return body

    async def generate(self, query: Query, key: str) -> Response:
        """Send ``query``; a request that finally fails returns a response with ``error`` set."""
        start = time.perf_counter()

        def parse(data: Any) -> Response:
            choice = data["choices"][0]
            usage = data.get("usage") or {}
            return Response(
                key=key,
                prompt_id=query.prompt_id,
                model=self._model,
                text=(choice.get("message") or {}).get("content") or "",
                finish_reason=choice.get("finish_reason"),
                usage=Usage(
                    prompt_tokens=int(usage.get("prompt_tokens") or 0),
                    completion_tokens=int(usage.get("completion_tokens") or 0),
                ),
                latency_s=time.perf_counter() - start,
            )

        def on_error(failure: Failure) -> Response | None:
            # Azure OpenAI answers HTTP 400 with code "content_filter" when it filters the prompt
            error = failure.body.get("error") if isinstance(failure.body, dict) else None
            if failure.status == 400 and isinstance(error, dict) and error.get("code") == "content_filter":
                return Response(
                    key=key,
                    prompt_id=query.prompt_id,
                    model=self._model,
                    finish_reason="content_filter",
                    latency_s=time.perf_counter() - start,
                )
            return None

        result = await self.transport.post("/chat/completions", self.request_body(query), parse, on_error)
        if isinstance(result, Response):
            return result
        return Response(
            key=key,
            prompt_id=query.prompt_id,
            model=self._model,
            latency_s=time.perf_counter() - start,
            error=result,
        )
