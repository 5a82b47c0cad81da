"""The backend interface: one query in, one response out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from overrefusal.records import Query, Response, ResponseError


class Backend(ABC):
    """A model that answers queries.

    Subclasses implement :meth:`generate`. It must not raise for per-request failures:
    a request that finally fails returns a :class:`Response` with ``error`` set, which is
    stored but never judged. Raise :class:`overrefusal.errors.RunError` only when the
    backend as a whole is unusable.
    """

    name: ClassVar[str]
    """Registry name of the backend."""
    default_max_tokens: ClassVar[int] = 512
    """``max_tokens`` used when the user gives none."""

    @property
    @abstractmethod
    def model(self) -> str:
        """The model's name as shown in reports and run folder names."""

    @property
    def identity(self) -> dict[str, str]:
        """What identifies the answering model in the cache key.

        Transport details (URLs, timeouts, concurrency) stay out so that the same model
        behind another server or with other limits reuses the cache.
        """
        return {"backend": self.name, "model": self.model}

    @property
    def concurrency(self) -> int:
        """How many requests may be in flight at once."""
        return 1

    def failed(self, query: Query, key: str, error: ResponseError, latency_s: float = 0.0) -> Response:
        """The response recording that ``query`` finally failed with ``error``."""
        return Response(key=key, prompt_id=query.prompt_id, model=self.model, latency_s=latency_s, error=error)

    def check(self) -> None:  # noqa: B027 - optional hook, default does nothing
        """Fail now, before any request, when the backend cannot work (a missing extra, model files)."""

    @abstractmethod
    async def generate(self, query: Query, key: str) -> Response:
        """Answer ``query``; ``key`` is its cache key, to be copied into the response."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook, default does nothing
        """Release resources (HTTP sessions, model memory)."""
