"""The OpenAI chat-completion answer format, spoken by llama.cpp (in-process) and OpenAI-compatible servers."""

from __future__ import annotations

from typing import Any

from overrefusal.records import Response, Usage


def chat_completion_response(
    data: dict[str, Any], *, key: str, prompt_id: str, model: str, latency_s: float
) -> Response:
    """Turn a chat-completion JSON answer into a :class:`Response` (KeyError/IndexError if it has no choice)."""
    choice = data["choices"][0]
    usage = data.get("usage") or {}
    return Response(
        key=key,
        prompt_id=prompt_id,
        model=model,
        text=(choice.get("message") or {}).get("content") or "",
        finish_reason=choice.get("finish_reason"),
        usage=Usage(
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
        ),
        latency_s=latency_s,
    )
