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
    message = choice.get("message") or {}
    # OpenAI puts a model's refusal in ``message.refusal`` with ``content`` null: it is the answer
    text = message.get("content") or message.get("refusal") or ""
    return Response(
        key=key,
        prompt_id=prompt_id,
        model=model,
        text=str(text),
        finish_reason=choice.get("finish_reason"),
        usage=Usage(
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
        ),
        latency_s=latency_s,
    )
