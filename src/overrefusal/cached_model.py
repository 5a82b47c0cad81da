"""Send a query unless the store has its answer: the one cached-model layer.

The runner, the LLM judge and the generation stages all ask models through :class:`CachedModel`,
so the cache key (backend identity, messages, parameters, sample index, cache tag), the cache
policy (``--no-cache``, ``--cache-tag``) and repeated samples (``--samples``) live here only.

Every new answer is committed within milliseconds of its arrival, so an interrupted run resumes
without losing or repeating completed requests. Errored answers are stored for the record but
are never cache hits. Processes sharing the store never send one request twice: each takes a
lease on a key before sending it and awaits the answers of keys another process holds
(:mod:`overrefusal.leases`). A :class:`~overrefusal.errors.RunStopped` from the backend (a cause
that fails every request) stops the work, keeping what was answered.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from overrefusal.backends.base import Backend
from overrefusal.backends.reasoning import CLOSE, OPEN, split_thinking
from overrefusal.errors import BadInputError, RunStopped
from overrefusal.hashing import content_hash
from overrefusal.leases import Leases
from overrefusal.progress import Bar
from overrefusal.records import Message, Query, Response
from overrefusal.store import ResponseCommitter, Store

MAX_TAG_CHARS = 80

WAIT_POLL_S = 0.1
"""How often a process awaiting another's answers looks in the store."""


PendingQueries = dict[str, tuple[Query, int]]
"""Queries to answer by store key: (query, sample index)."""


class BulkSender(Protocol):
    """Answers many queries at once instead of one request each (a provider's batch API, a Ray cluster).

    It leases the keys it will answer with ``take`` (keys another process holds are left to the
    per-request path, which awaits their answers), hands every answer (errors too) to ``deliver``
    as it arrives (``deliver`` commits it to the store), and advances ``bar``. It raises
    :class:`~overrefusal.errors.RunStopped` when it must stop before answering everything.
    """

    async def send(
        self,
        pending: PendingQueries,
        take: Callable[[Sequence[str]], list[str]],
        deliver: Callable[[Sequence[Response]], None],
        bar: Bar,
    ) -> None:
        """Answer the ``pending`` queries whose keys ``take`` leases to this process."""


@dataclass
class Answers:
    """What :meth:`CachedModel.answer_partial` got: a response per slot (None: never answered), and why it stopped."""

    responses: list[Response | None]
    stopped: str | None = None
    """The cause that stopped the work early (one line with the fix), or None."""


@dataclass(frozen=True)
class CachePolicy:
    """How the store is used when answering.

    Attributes:
        refresh: send every query again (``--no-cache``); the new answers replace the stored ones
            (an error never replaces a stored answer).
        tag: keeps a separate cache for the same model name (``--cache-tag``), e.g. two checkpoints
            served under one name. Empty: the shared cache.
    """

    refresh: bool = False
    tag: str = ""

    def __post_init__(self) -> None:
        if len(self.tag) > MAX_TAG_CHARS or any(not ch.isprintable() for ch in self.tag):
            raise BadInputError(f"--cache-tag must be at most {MAX_TAG_CHARS} printable characters")


def cache_key(query: Query, identity: dict[str, str], *, sample: int = 0, tag: str = "") -> str:
    """Key of ``query``'s answer in the store.

    Backend identity, messages and parameters always enter the key; the sample index and the
    cache tag only when set, so the first sample of an untagged run keeps the keys of earlier versions.
    """
    value: dict[str, object] = {
        "backend": identity,
        "messages": [_message_key(m) for m in query.messages],
        "params": query.params.model_dump(),
    }
    if sample:
        value["sample"] = sample
    if tag:
        value["tag"] = tag
    return content_hash(value, prefix="resp")


def _message_key(message: Message) -> dict[str, str]:
    """A message in the cache key: role and text, plus the image's content hash when it has one.

    Text-only messages keep the keys they had before images existed.
    """
    value = {"role": message.role, "content": message.content}
    if message.image is not None:
        value["image"] = message.image.sha256
    return value


def upgrade(response: Response) -> Response:
    """A stored answer from before reasoning was recorded apart: its ``<think>`` block is split off now."""
    if response.reasoning or not response.ok or (CLOSE not in response.text and OPEN not in response.text):
        return response
    split = split_thinking(response.text)
    if not split.reasoning:
        return response
    return response.model_copy(
        update={"text": split.answer, "reasoning": split.reasoning, "ended_in_reasoning": split.ended_in_reasoning}
    )


def sample_query(query: Query, sample: int) -> Query:
    """The query sent for sample number ``sample``: the seed moves on so samples differ, reruns repeat."""
    if sample == 0 or query.params.seed is None:
        return query
    params = query.params.model_copy(update={"seed": query.params.seed + sample})
    return query.model_copy(update={"params": params})


class CachedModel:
    """A backend behind the store.

    Args:
        backend: the model.
        store: where answers are kept.
        policy: ``--no-cache`` and ``--cache-tag``.
        progress: draw a progress bar while requests are in flight.
        bulk: answers the missing queries in bulk first (``--batch``, ``--ray``); what it leaves
            (keys another process holds) goes the per-request way.
    """

    def __init__(
        self,
        backend: Backend,
        store: Store,
        policy: CachePolicy | None = None,
        progress: bool = True,
        bulk: BulkSender | None = None,
    ):
        """Wrap ``backend``; nothing is sent until :meth:`answer`."""
        self.backend = backend
        self.store = store
        self.policy = policy or CachePolicy()
        self.progress = progress
        self.bulk = bulk

    def key(self, query: Query, sample: int = 0) -> str:
        """The store key of ``query``'s answer number ``sample``."""
        return cache_key(query, self.backend.identity, sample=sample, tag=self.policy.tag)

    async def answer(
        self,
        queries: Sequence[Query],
        samples: int = 1,
        on_response: Callable[[Response], None] | None = None,
    ) -> list[Response]:
        """Answer each query ``samples`` times; returns the answers query by query, samples in order.

        Raises:
            RunStopped: a cause that fails every request stopped the work (see :meth:`answer_partial`).
        """
        answers = await self.answer_partial(queries, samples, on_response)
        if answers.stopped is not None:
            raise RunStopped(answers.stopped)
        return [r for r in answers.responses if r is not None]

    async def answer_partial(
        self,
        queries: Sequence[Query],
        samples: int = 1,
        on_response: Callable[[Response], None] | None = None,
    ) -> Answers:
        """Answer each query ``samples`` times, query by query, samples in order; stop on :class:`RunStopped`.

        Only answers the store lacks are requested (all of them with ``refresh``); a query that
        occurs twice is sent once, and one leased by another process is awaited, not sent. Each
        response carries its sample index; ``cached`` tells whether it came from the store (or from
        another process). When the backend raises :class:`RunStopped`, what was answered is
        committed and returned with the cause; the other slots are None.
        """
        if samples < 1:
            raise BadInputError("--samples must be at least 1")
        slots = [(query, sample) for query in queries for sample in range(samples)]
        keys = [self.key(query, sample) for query, sample in slots]
        found: dict[str, Response] = (
            {} if self.policy.refresh else {k: upgrade(r) for k, r in self.store.get_responses(keys).items()}
        )
        pending: PendingQueries = {}
        for key, slot in zip(keys, slots, strict=True):
            if key not in found and key not in pending:
                pending[key] = slot
        sent: set[str] = set()
        stopped: str | None = None
        if pending:
            with Bar(f"{self.backend.model} answering", len(pending), enabled=self.progress) as bar:
                try:
                    if self.bulk is not None:
                        await self._send_bulk(self.bulk, pending, found, sent, on_response, bar)
                        pending = {k: v for k, v in pending.items() if k not in found}
                    if pending:
                        await self._send_leased(pending, found, sent, bar, on_response)
                except RunStopped as exc:
                    stopped = str(exc)
        out: list[Response | None] = []
        answered: set[str] = set()
        for key, (query, _sample) in zip(keys, slots, strict=True):
            response = found.get(key)
            if response is None:
                out.append(None)
                continue
            if key in sent:
                if key in answered:  # a duplicate query: one request answered both
                    response = response.model_copy(update={"cached": True})
                answered.add(key)
            if response.prompt_id != query.prompt_id:  # an answer reused across prompts with the same text
                response = response.model_copy(update={"prompt_id": query.prompt_id})
            out.append(response)
        return Answers(out, stopped)

    async def _send_bulk(
        self,
        bulk: BulkSender,
        pending: PendingQueries,
        found: dict[str, Response],
        sent: set[str],
        on_response: Callable[[Response], None] | None,
        bar: Bar,
    ) -> None:
        """Hand ``pending`` to ``bulk`` under this process's leases; commit what it delivers as it arrives."""
        store, refresh = self.store, self.policy.refresh
        leases = Leases(store)

        def take(keys: Sequence[str]) -> list[str]:
            return leases.take(keys, refresh=refresh)

        def deliver(responses: Sequence[Response]) -> None:
            fixed = [r.model_copy(update={"sample": pending[r.key][1]}) for r in responses if r.key in pending]
            store.put_responses(fixed, replace=refresh)
            for response in fixed:
                found[response.key] = response
                sent.add(response.key)
                if on_response is not None:
                    on_response(response)

        leases.start()
        try:
            await bulk.send(pending, take, deliver, bar)
        finally:
            leases.stop()

    async def _send_leased(
        self,
        pending: PendingQueries,
        found: dict[str, Response],
        sent: set[str],
        bar: Bar,
        on_response: Callable[[Response], None] | None,
    ) -> None:
        """Send the ``pending`` queries whose lease this process gets; await the others' answers in the store."""
        backend, store, refresh = self.backend, self.store, self.policy.refresh
        leases = Leases(store)
        committer = ResponseCommitter(store, replace=refresh)
        workers = max(1, backend.concurrency)
        chunk = max(64, 4 * workers)  # leases taken a few waves ahead: one transaction per chunk
        todo = deque(pending)
        ready: deque[str] = deque()
        waiting: dict[str, float] = {}  # key -> when this process began waiting for another's answer
        poll = asyncio.Lock()

        def settle(key: str, response: Response) -> None:
            found[key] = response
            bar.advance(error=not response.ok)
            if on_response is not None:
                on_response(response)

        async def check_waiting() -> None:
            """Take the answers others committed; lease the keys whose holder is gone; else pause."""
            if not waiting:  # another worker settled them while this one waited for the lock
                return
            since = min(waiting.values())
            for key, response in store.responses_since(list(waiting), since, fresh_only=refresh).items():
                del waiting[key]
                settle(key, upgrade(response))  # answered by another process: counted as cached, not sent
            if waiting:
                held = leases.take_free(list(waiting), refresh=refresh)
                for key in held:
                    del waiting[key]
                    ready.append(key)
                if not held:
                    await asyncio.sleep(WAIT_POLL_S)

        async def next_key() -> str | None:
            while True:
                if ready:
                    return ready.popleft()
                if todo:
                    batch = [todo.popleft() for _ in range(min(chunk, len(todo)))]
                    held = set(leases.take(batch, refresh=refresh))
                    now = time.time()
                    for key in batch:
                        if key in held:
                            ready.append(key)
                        else:
                            waiting[key] = now
                    continue
                if not waiting:
                    return None
                if poll.locked():  # another worker is checking: wait for it, then look again
                    async with poll:
                        continue
                async with poll:
                    await check_waiting()

        async def worker() -> None:
            while (key := await next_key()) is not None:
                query, sample = pending[key]
                response = await backend.generate(sample_query(query, sample), key)
                if sample:
                    response = response.model_copy(update={"sample": sample})
                committer.add(response)  # once committed, nobody asks again: the lease needs no release
                sent.add(key)
                settle(key, response)

        leases.start()
        tasks = [asyncio.ensure_future(worker()) for _ in range(workers)]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            try:
                committer.flush()
            finally:
                leases.stop()
