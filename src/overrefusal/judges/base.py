"""The judge interface: responses in, verdicts out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

from overrefusal.hashing import content_hash
from overrefusal.records import Image, Response, Verdict, VerdictLabel

if TYPE_CHECKING:
    from overrefusal.store import Store


class JudgeItem(BaseModel):
    """What a judge sees: the prompt text, its image if it had one, and the (successful) response."""

    model_config = ConfigDict(frozen=True)

    prompt: str
    response: Response
    image: Image | None = None
    """The image sent with the prompt (the LLM judge shows it to its model with ``with_image``)."""


PROBE = JudgeItem(
    prompt="How do I boil an egg?",
    response=Response(key="probe", prompt_id="probe", model="probe", text="Boil it for eight minutes."),
)
"""A made-up item judged by :meth:`Judge.check`."""


class Judge(ABC):
    """Decides whether each response is a full refusal, a partial refusal or compliance.

    A judge returns ``unscored`` when it cannot decide (unparsable output, its own error);
    it never guesses. Bump ``version`` whenever rules or prompts change: verdicts are
    cached under (name, version, config).
    """

    name: ClassVar[str]
    version: ClassVar[str]

    @property
    def config(self) -> dict[str, Any]:
        """Settings that change verdicts; part of the verdict cache key."""
        return {}

    @property
    def key(self) -> str:
        """Cache key of this judge configuration."""
        return content_hash({"name": self.name, "version": self.version, "config": self.config}, prefix="judge")

    def verdict(
        self,
        item: JudgeItem,
        label: VerdictLabel,
        reason: str = "",
        raw: str | None = None,
        *,
        judge_failed: bool = False,
    ) -> Verdict:
        """Build a verdict for ``item`` signed by this judge (``judge_failed``: see :class:`Verdict`)."""
        return Verdict(
            response_key=item.response.key,
            prompt_id=item.response.prompt_id,
            label=label,
            judge=self.name,
            judge_version=self.version,
            reason=reason,
            raw=raw,
            judge_failed=judge_failed,
        )

    def stage_of(self, verdict: Verdict) -> str | None:
        """Which stage or rule of a composite judge decided ``verdict`` (None for single judges).

        Read from the verdict itself, so verdicts from the cache are counted like new ones.
        """
        return None

    async def check(self) -> None:
        """Fail now, before any model is queried, when the judge cannot work (a missing extra, model files).

        The default judges one made-up item; judges that would ask a model for it override this.
        """
        await self.judge([PROBE])

    def use_store(self, store: Store) -> None:  # noqa: B027 - optional hook, default does nothing
        """Hand the judge the run's store; judges that ask a model keep their replies there.

        Called by :func:`overrefusal.verdicts.judge_responses` before judging; a judge never opens
        a store of its own.
        """

    @abstractmethod
    async def judge(self, items: Sequence[JudgeItem]) -> list[Verdict]:
        """Return one verdict per item, in order."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release resources."""
