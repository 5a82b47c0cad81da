"""The backend interface: one query in, one response out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from overrefusal.errors import BadInputError
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
    accepts_images: ClassVar[bool] = False
    """Whether queries may carry images (vision-language models behind an API that takes them)."""
    makes_images: ClassVar[bool] = False
    """Whether the answers are generated images rather than text (text-to-image models)."""

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

    def use_image_dir(self, folder: Path) -> None:  # noqa: B027 - optional hook, default does nothing
        """Where an image generator writes the images it gets (the run hands over ``<output-dir>/.images``)."""

    def check_queries(self, queries: Sequence[Query]) -> None:
        """Fail now, before any request, when a query holds an image this backend cannot send.

        Raises:
            BadInputError: one line naming the backends that take images.
        """
        if self.accepts_images:
            return
        with_image = sum(1 for q in queries if any(m.image is not None for m in q.messages))
        if with_image:
            raise BadInputError(
                f"the {self.name} backend cannot send images, and {with_image} prompt(s) have one: "
                "use --backend openai (vLLM, Ollama, hosted APIs) or --backend anthropic with a vision model"
            )

    @abstractmethod
    async def generate(self, query: Query, key: str) -> Response:
        """Answer ``query``; ``key`` is its cache key, to be copied into the response."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook, default does nothing
        """Release resources (HTTP sessions, model memory)."""
