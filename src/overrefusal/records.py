"""Typed records that flow one way: Prompt -> Query -> Response -> Verdict.

All records are frozen pydantic models so they can be hashed, cached and exported
without surprises.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Label = Literal["benign", "toxic"]
"""Ground-truth label of a prompt: benign prompts should be answered, toxic ones refused."""

VerdictLabel = Literal["full_refusal", "partial_refusal", "compliance", "unscored", "provider_refusal"]
"""What was decided about a response. ``unscored`` never counts as refusal or compliance;
``provider_refusal`` (the provider blocked the prompt or the answer) is a refusal no judge was asked about."""

REFUSAL_LABELS: frozenset[str] = frozenset({"full_refusal", "partial_refusal", "provider_refusal"})

CATEGORIES: tuple[str, ...] = (
    "deception",
    "harassment",
    "harmful",
    "hate",
    "illegal",
    "privacy",
    "self-harm",
    "sexual",
    "unethical",
    "violence",
)
"""The ten OR-Bench categories."""


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Image(_Record):
    """An image sent with a prompt or returned by an image generator.

    The bytes travel in memory only: they are left out of every JSON dump (run files, the store),
    which keep the content hash; run folders hold the files as ``images/<sha256>.<ext>``.
    """

    sha256: str
    """Hex sha256 of the image bytes: part of the query's cache key."""
    media_type: str
    """``image/png``, ``image/jpeg``, ``image/gif`` or ``image/webp``."""
    width: int = 0
    height: int = 0
    name: str = ""
    """Where it came from, for people: the path as written in the benchmark, ``data URI`` or ``generated``."""
    data: bytes = Field(default=b"", exclude=True, repr=False)

    @property
    def file_name(self) -> str:
        """Its file name in a run folder's ``images/``."""
        return f"{self.sha256}.{self.media_type.rsplit('/', 1)[-1]}"


class Prompt(_Record):
    """One benchmark item."""

    id: str
    """Stable identifier within its benchmark."""
    text: str
    """The user message sent to the model."""
    category: str
    """Category (one of the OR-Bench categories for OR-Bench-style sets; free text otherwise)."""
    label: Label
    """Whether a helpful model should answer (benign) or refuse (toxic)."""
    source: str = ""
    """Where the prompt came from (benchmark name or file)."""
    image: Image | None = None
    """An image sent with the text (vision-language benchmarks such as MOSSBench)."""
    stimulus: str = ""
    """The kind of stimulus that may provoke a refusal (MOSSBench: exaggerated risk, negated harm,
    counterintuitive interpretation); rates are also given per stimulus type."""


class GenerateParams(_Record):
    """Only the settings that change a model's output; they are part of the cache key."""

    system_prompt: str | None = None
    temperature: float = Field(default=0.0, ge=0.0, le=2.0, allow_inf_nan=False)
    """0 to 2, the range OpenAI-compatible servers accept."""
    max_tokens: int | None = Field(default=None, ge=1)
    """Tokens per answer; ``None`` means the backend's default (resolved before querying)."""
    top_p: float | None = Field(default=None, ge=0.0, le=1.0, allow_inf_nan=False)
    seed: int | None = 0


class Message(_Record):
    """A chat message."""

    role: Literal["system", "user", "assistant"]
    content: str
    image: Image | None = None
    """An image sent with the text (user messages only)."""


class Query(_Record):
    """What a backend receives: messages plus output-affecting parameters."""

    prompt_id: str
    messages: tuple[Message, ...]
    params: GenerateParams

    @classmethod
    def for_prompt(cls, prompt: Prompt, params: GenerateParams) -> Query:
        """Build the single-turn query OR-Bench sends: optional system prompt, then the user prompt."""
        messages: list[Message] = []
        if params.system_prompt:
            messages.append(Message(role="system", content=params.system_prompt))
        messages.append(Message(role="user", content=prompt.text, image=prompt.image))
        return cls(prompt_id=prompt.id, messages=tuple(messages), params=params)


class Usage(_Record):
    """Token counts reported by the backend."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    """All generated tokens, reasoning included."""
    reasoning_tokens: int = 0
    """Generated tokens spent on reasoning (as the provider reports them; 0 when it does not)."""


class ResponseError(_Record):
    """Why a request finally failed (after retries)."""

    kind: str
    """Short machine-readable kind, e.g. ``http_500``, ``timeout``, ``connection``."""
    message: str
    fatal: bool = False
    """The cause would fail every request the same way (rejected key, unknown model, quota): the run stops."""


class Response(_Record):
    """A model's answer to a query, or the error that prevented one."""

    key: str
    """Store key of the answer (see :func:`overrefusal.cached_model.cache_key`)."""
    prompt_id: str
    model: str
    text: str = ""
    """The final answer: what judges read (a reasoning model's thinking is in :attr:`reasoning`)."""
    reasoning: str = ""
    """A reasoning model's thinking: ``reasoning_content`` / ``reasoning`` fields, ``<think>`` blocks,
    Anthropic thinking blocks."""
    ended_in_reasoning: bool = False
    """The answer stopped inside its reasoning (no final answer): scored ``unscored``."""
    finish_reason: str | None = None
    """``stop``, ``length``, ``content_filter`` (a provider-side refusal), ..."""
    provider_refusal: str | None = None
    """Why the provider refused instead of the model, e.g. ``content_filter``, ``invalid_prompt``,
    ``refusal`` (Anthropic), ``message.refusal`` (OpenAI): a refusal no judge is asked about."""
    served_model: str | None = None
    """The model name the server reported (it may differ from the one asked for)."""
    system_fingerprint: str | None = None
    """The server's configuration fingerprint, when it sends one."""
    usage: Usage = Usage()
    latency_s: float = 0.0
    error: ResponseError | None = None
    image: Image | None = None
    """The image an image generator returned (its bytes are kept in files, not in the store)."""
    sample: int = 0
    """Which of the prompt's answers this is (``--samples N`` asks each prompt N times)."""
    cached: bool = False
    """True when this response came from the store rather than a new request."""

    @property
    def ok(self) -> bool:
        """Whether the request produced an answer that can be judged."""
        return self.error is None


class Verdict(_Record):
    """A judge's decision about one response."""

    response_key: str
    prompt_id: str
    label: VerdictLabel
    judge: str
    judge_version: str
    reason: str = ""
    """Short explanation: matched phrase, judge rationale, or why it is unscored."""
    raw: str | None = None
    """Raw judge output, when the judge is a model."""
    judge_failed: bool = False
    """``unscored`` because the judge itself failed (e.g. its model's request errored): such a
    verdict is not cached, so the next run asks the judge again."""

    @property
    def is_refusal(self) -> bool:
        """Full or partial refusal."""
        return self.label in REFUSAL_LABELS
