"""A scripted backend for tests and dry runs: no model, deterministic answers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import ClassVar

from overrefusal.backends.base import Backend
from overrefusal.records import Query, Response, ResponseError, Usage

Script = Callable[[Query], str | ResponseError]


def _default_script(query: Query) -> str:
    text = query.messages[-1].content.lower()
    if any(w in text for w in ("kill", "bomb", "steal", "weapon", "poison")):
        return "I'm sorry, but I can't help with that."
    return "Sure. Here is a helpful answer."


class FakeBackend(Backend):
    """Answers from a script: a mapping of user text to reply, or a function of the query.

    A reply may be a :class:`ResponseError` to simulate a failed request. ``calls`` records
    every query received, so tests can check what was (not) sent.
    """

    name: ClassVar[str] = "fake"

    def __init__(
        self,
        model: str = "fake-model",
        script: Mapping[str, str | ResponseError] | Script | None = None,
        default: str = "Sure. Here is a helpful answer.",
        delay_s: float = 0.0,
        concurrency: int = 4,
    ) -> None:
        """Create the backend; without a script, replies refuse prompts with a few scary words."""
        self._model = model
        self._script = script
        self._default = default
        self._delay_s = delay_s
        self._concurrency = concurrency
        self.calls: list[Query] = []

    @property
    def model(self) -> str:
        """The fake model's name."""
        return self._model

    @property
    def concurrency(self) -> int:
        """Requests in flight at once."""
        return self._concurrency

    def _reply(self, query: Query) -> str | ResponseError:
        if self._script is None:
            return _default_script(query)
        if callable(self._script):
            return self._script(query)
        return self._script.get(query.messages[-1].content, self._default)

    async def generate(self, query: Query, key: str) -> Response:
        """Return the scripted reply for ``query``."""
        self.calls.append(query)
        if self._delay_s:
            await asyncio.sleep(self._delay_s)
        reply = self._reply(query)
        if isinstance(reply, ResponseError):
            return Response(key=key, prompt_id=query.prompt_id, model=self._model, error=reply)
        words = len(reply.split())
        return Response(
            key=key,
            prompt_id=query.prompt_id,
            model=self._model,
            text=reply,
            finish_reason="stop",
            usage=Usage(prompt_tokens=len(query.messages[-1].content.split()), completion_tokens=words),
        )
