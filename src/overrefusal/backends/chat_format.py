"""The OpenAI chat-completion answer format, spoken by llama.cpp (in-process) and OpenAI-compatible servers."""

from __future__ import annotations

from typing import Any

from overrefusal.backends.reasoning import split_thinking
from overrefusal.records import Response, Usage

REASONING_FIELDS = ("reasoning_content", "reasoning", "thinking")
"""Message fields that carry a reasoning model's thinking (vLLM/SGLang/DeepSeek, OpenRouter/Ollama, ...)."""


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def chat_completion_response(
    data: dict[str, Any], *, key: str, prompt_id: str, model: str, latency_s: float
) -> Response:
    """Turn a chat-completion JSON answer into a :class:`Response` (KeyError/IndexError if it has no choice).

    The final answer and the reasoning are recorded apart; OpenAI's ``message.refusal`` and the
    ``content_filter`` finish reason are refusals by the provider.
    """
    choice = data["choices"][0]
    usage = data.get("usage") or {}
    message = choice.get("message") or {}
    finish = choice.get("finish_reason")
    thinking = next((t for t in (_text(message.get(f)) for f in REASONING_FIELDS) if t), "")
    split = split_thinking(_text(message.get("content")), thinking)
    refusal = _text(message.get("refusal"))
    provider = "message.refusal" if refusal else "content_filter" if finish == "content_filter" else None
    details = usage.get("completion_tokens_details") or {}
    return Response(
        key=key,
        prompt_id=prompt_id,
        model=model,
        text=split.answer or refusal,
        reasoning=split.reasoning,
        ended_in_reasoning=split.ended_in_reasoning and provider is None,
        finish_reason=finish,
        provider_refusal=provider,
        usage=Usage(
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            reasoning_tokens=int(details.get("reasoning_tokens") or 0) if isinstance(details, dict) else 0,
        ),
        latency_s=latency_s,
        served_model=_text(data.get("model")) or None,
        system_fingerprint=_text(data.get("system_fingerprint")) or None,
    )
