"""The ``anthropic`` backend: Anthropic's Messages API (``POST <base_url>/v1/messages``).

Extended thinking (``-B 'extra_body={"thinking": {"type": "enabled", "budget_tokens": 1024}}'``) comes
back as thinking blocks: recorded as the response's reasoning, apart from the final answer.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Sequence
from typing import Any, ClassVar

from overrefusal.backends.http import HttpBackend
from overrefusal.backends.reasoning import split_thinking
from overrefusal.errors import BadInputError
from overrefusal.records import Message, Query, Response, Usage

MAX_IMAGE_BYTES = 5 * 1024 * 1024
"""The Messages API's limit per image."""

ANTHROPIC_VERSION = "2023-06-01"

_STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "refusal": "content_filter",
    "tool_use": "tool_calls",
}
"""Anthropic stop reasons in OpenAI's terms; ``refusal`` (the provider's safety stop) is a content filter."""


def content(message: Message) -> str | list[dict[str, Any]]:
    """A message's content: its text, or an image block (base64 source) followed by a text block."""
    if message.image is None:
        return message.content
    image = message.image
    source = {"type": "base64", "media_type": image.media_type, "data": base64.b64encode(image.data).decode("ascii")}
    blocks: list[dict[str, Any]] = [{"type": "image", "source": source}]
    if message.content:
        blocks.append({"type": "text", "text": message.content})
    return blocks


def message_response(data: Any, *, key: str, prompt_id: str, model: str, latency_s: float) -> Response:
    """Turn a Messages API answer into a :class:`Response` (KeyError/TypeError/ValueError when malformed).

    Thinking blocks become the reasoning; the ``refusal`` stop reason is the provider's refusal.
    """
    if data.get("type") == "error":
        raise ValueError("error object in a 2xx answer")
    blocks = data["content"]
    text = "".join(b.get("text", "") for b in blocks if b.get("type") == "text")
    thinking = "\n\n".join(
        b.get("thinking", "") if b.get("type") == "thinking" else "[redacted thinking]"
        for b in blocks
        if b.get("type") in ("thinking", "redacted_thinking")
    )
    split = split_thinking(text, thinking)
    reason = data.get("stop_reason")
    usage = data.get("usage") or {}
    refused = reason == "refusal"  # the provider's safety stop
    return Response(
        key=key,
        prompt_id=prompt_id,
        model=model,
        text=split.answer,
        reasoning=split.reasoning,
        ended_in_reasoning=split.ended_in_reasoning and not refused,
        finish_reason=_STOP_REASONS.get(reason, reason) if reason else None,
        provider_refusal="refusal" if refused else None,
        usage=Usage(
            prompt_tokens=int(usage.get("input_tokens") or 0),
            completion_tokens=int(usage.get("output_tokens") or 0),
        ),
        latency_s=latency_s,
        served_model=data.get("model") if isinstance(data.get("model"), str) else None,
    )


class AnthropicBackend(HttpBackend):
    """Claude models through the Messages API.

    Args:
        model: the model name, e.g. ``claude-sonnet-4-5``.
        base_url: one or several base URLs (default ``https://api.anthropic.com``).
        api_key_env: name of the environment variable holding the key (default ``ANTHROPIC_API_KEY``,
            used only for the default URL).
        concurrency: requests in flight at once.
        rpm: optional requests-per-minute limit.
        timeout_s: time limit of one attempt.
        max_retries: retries before a request is recorded as an error.
        backoff_s: first retry delay; it doubles on each retry, with jitter, and ``Retry-After`` is honoured.
        give_up_after_s: stop the run when every base URL has been down this long (the circuit breaker).
        max_retry_after_s: longest ``Retry-After`` waited for; a longer one stops the run, saying until when.
        extra_body: more JSON fields for every request; part of the cache key.
    """

    name: ClassVar[str] = "anthropic"
    default_max_tokens: ClassVar[int] = 512
    default_base_url: ClassVar[str] = "https://api.anthropic.com"
    default_key_env: ClassVar[str | None] = "ANTHROPIC_API_KEY"
    models_path: ClassVar[str] = "/v1/models"
    accepts_images: ClassVar[bool] = True

    def check_queries(self, queries: Sequence[Query]) -> None:
        """Refuse, before any request, images over the Messages API's 5 MB limit."""
        for query in queries:
            for message in query.messages:
                if message.image is not None and len(message.image.data) > MAX_IMAGE_BYTES:
                    raise BadInputError(
                        f"prompt {query.prompt_id}: image {message.image.name[:60]!r} is "
                        f"{len(message.image.data) / 1e6:.1f} MB, over the Messages API's 5 MB limit: shrink it"
                    )

    def auth_headers(self, key: str | None) -> dict[str, str]:
        """``x-api-key`` plus the API version header."""
        headers = {"anthropic-version": ANTHROPIC_VERSION}
        if key:
            headers["x-api-key"] = key
        return headers

    def request_body(self, query: Query) -> dict[str, Any]:
        """The Messages API body: the system prompt goes in its own field; no seed parameter exists."""
        params = query.params
        body: dict[str, Any] = {
            "model": self._model,
            "max_tokens": params.max_tokens or self.default_max_tokens,
            "messages": [{"role": m.role, "content": content(m)} for m in query.messages if m.role != "system"],
            "temperature": params.temperature,
        }
        system = "\n\n".join(m.content for m in query.messages if m.role == "system")
        if system:
            body["system"] = system
        if params.top_p is not None:
            body["top_p"] = params.top_p
        body.update(self._extra)
        return body

    async def generate(self, query: Query, key: str) -> Response:
        """Send ``query``; a request that finally fails returns a response with ``error`` set."""
        start = time.perf_counter()

        def parse(data: Any) -> Response:
            return message_response(
                data, key=key, prompt_id=query.prompt_id, model=self._model, latency_s=time.perf_counter() - start
            )

        result = await self.transport.post("/v1/messages", self.request_body(query), parse)
        if isinstance(result, Response):
            return result
        return self.failed(query, key, result, time.perf_counter() - start)
