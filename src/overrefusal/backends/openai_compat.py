"""The ``openai`` backend: chat completions on any OpenAI-compatible server.

vLLM, SGLang, TGI, Ollama, llama.cpp's server, LM Studio and hosted APIs all speak this
protocol; point ``base_url`` at the server's ``/v1``. A prompt's image is sent as an ``image_url``
content part holding a base64 data URI, which vision-language models served this way take.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from overrefusal.backends.chat_format import chat_completion_response
from overrefusal.backends.http import Failure, HttpBackend
from overrefusal.errors import BadInputError
from overrefusal.images import data_uri
from overrefusal.records import Message, Query, Response

REASONING_MODEL = re.compile(r"(?:^|/)(?:o1|o3|o4|gpt-5)(?:$|[-.:_])", re.IGNORECASE)
"""OpenAI's reasoning model families (o1, o3, o4, gpt-5), also behind a ``provider/`` prefix."""
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
PROVIDER_REFUSAL_CODES = frozenset({"content_policy_violation", "invalid_prompt", "content_filter"})
"""Error codes of an HTTP 400 that mean the provider refused the prompt (OpenAI, Azure OpenAI)."""


def chat_message(message: Message) -> dict[str, Any]:
    """A message in the chat-completions format: an image goes as an ``image_url`` part holding a data URI."""
    if message.image is None:
        return {"role": message.role, "content": message.content}
    parts: list[dict[str, Any]] = [{"type": "image_url", "image_url": {"url": data_uri(message.image)}}]
    if message.content:
        parts.append({"type": "text", "text": message.content})
    return {"role": message.role, "content": parts}


def provider_refusal_code(failure: Failure) -> str | None:
    """The provider-refusal code of an error answer, or None for other errors."""
    error = failure.body.get("error") if isinstance(failure.body, dict) else None
    if failure.status != 400 or not isinstance(error, dict):
        return None
    code = error.get("code")
    return code if isinstance(code, str) and code in PROVIDER_REFUSAL_CODES else None


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
        give_up_after_s: stop the run when every base URL has been down this long (the circuit breaker).
        max_retry_after_s: longest ``Retry-After`` waited for; a longer one stops the run, saying until when.
        extra_body: more JSON fields for every request (e.g. ``{"stop": ["END"]}``); part of the cache key.
        reasoning_effort: ``minimal``, ``low``, ``medium`` or ``high`` (and ``none``/``xhigh`` where the
            model has them) for reasoning models; part of the cache key.
        reasoning_model: whether the model is an OpenAI reasoning model, which takes
            ``max_completion_tokens`` and no ``temperature``/``top_p`` (default: guessed from the name:
            o1, o3, o4 and gpt-5 families).
    """

    name: ClassVar[str] = "openai"
    default_max_tokens: ClassVar[int] = 512
    accepts_images: ClassVar[bool] = True
    default_base_url: ClassVar[str] = "https://api.openai.com/v1"
    default_key_env: ClassVar[str | None] = "OPENAI_API_KEY"

    def __init__(
        self,
        model: str | None = None,
        base_url: str | Sequence[str] | None = None,
        api_key_env: str | None = None,
        concurrency: int = 32,
        rpm: float | None = None,
        timeout_s: float = 120.0,
        max_retries: int = 6,
        backoff_s: float = 0.5,
        extra_body: Mapping[str, Any] | None = None,
        reasoning_effort: str | None = None,
        reasoning_model: bool | None = None,
        give_up_after_s: float = 120.0,
        max_retry_after_s: float = 60.0,
        **unknown: object,
    ) -> None:
        """Configure the backend (see the class docstring)."""
        super().__init__(
            model,
            base_url,
            api_key_env,
            concurrency,
            rpm,
            timeout_s,
            max_retries,
            backoff_s,
            extra_body,
            give_up_after_s,
            max_retry_after_s,
            **unknown,
        )
        if reasoning_effort is not None and reasoning_effort not in REASONING_EFFORTS:
            raise BadInputError(
                f"reasoning_effort {str(reasoning_effort)[:20]!r} is not one of {', '.join(REASONING_EFFORTS)}: "
                "fix -B reasoning_effort"
            )
        self.reasoning_effort = reasoning_effort
        self.reasoning_model = bool(REASONING_MODEL.search(self._model)) if reasoning_model is None else reasoning_model

    @property
    def identity(self) -> dict[str, str]:
        """Backend kind, model and extra body, plus the reasoning effort when given (it changes answers)."""
        ident = super().identity
        if self.reasoning_effort is not None:
            ident["reasoning_effort"] = self.reasoning_effort
        return ident

    def request_body(self, query: Query) -> dict[str, Any]:
        """The chat-completions JSON body for ``query``.

        Reasoning models get ``max_completion_tokens`` (their budget covers reasoning and answer)
        and no sampling parameters, which they reject.
        """
        params = query.params
        body: dict[str, Any] = {
            "model": self._model,
            "messages": [chat_message(m) for m in query.messages],
        }
        tokens = params.max_tokens or self.default_max_tokens
        if self.reasoning_model:
            body["max_completion_tokens"] = tokens
            if self.reasoning_effort is not None:
                body["reasoning_effort"] = self.reasoning_effort
        else:
            body["max_tokens"] = tokens
            body["temperature"] = params.temperature
            if params.top_p is not None:
                body["top_p"] = params.top_p
            if self.reasoning_effort is not None:
                body["reasoning_effort"] = self.reasoning_effort
        if params.seed is not None:
            body["seed"] = params.seed
        body.update(self._extra)
        return body

    async def generate(self, query: Query, key: str) -> Response:
        """Send ``query``; a request that finally fails returns a response with ``error`` set."""
        start = time.perf_counter()

        def parse(data: Any) -> Response:
            return chat_completion_response(
                data, key=key, prompt_id=query.prompt_id, model=self._model, latency_s=time.perf_counter() - start
            )

        def on_error(failure: Failure) -> Response | None:
            # OpenAI (invalid_prompt, content_policy_violation) and Azure (content_filter) refuse prompts
            # with an HTTP 400: a refusal by the provider, not a failed request
            code = provider_refusal_code(failure)
            if code is None:
                return None
            return Response(
                key=key,
                prompt_id=query.prompt_id,
                model=self._model,
                finish_reason="content_filter",
                provider_refusal=code,
                latency_s=time.perf_counter() - start,
            )

        result = await self.transport.post("/chat/completions", self.request_body(query), parse, on_error)
        if isinstance(result, Response):
            return result
        return self.failed(query, key, result, time.perf_counter() - start)
