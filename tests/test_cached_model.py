"""The cached-model layer: cache keys, --no-cache, --cache-tag, samples."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from overrefusal.backends.fake import FakeBackend, Script
from overrefusal.cached_model import Answers, CachedModel, CachePolicy, PendingQueries, cache_key, upgrade
from overrefusal.errors import BadInputError, RunStopped
from overrefusal.hashing import canonical_json, content_hash
from overrefusal.judges.keywords import KeywordJudge
from overrefusal.progress import Bar
from overrefusal.records import GenerateParams, Image, Message, Prompt, Query, Response, ResponseError
from overrefusal.store import Store
from overrefusal.verdicts import judge_responses


def query(text: str, temperature: float = 0.0, seed: int | None = 0) -> Query:
    params = GenerateParams(temperature=temperature, max_tokens=16, seed=seed)
    return Query(prompt_id=text, messages=(Message(role="user", content=text),), params=params)


def answer(model: CachedModel, queries: list[Query], samples: int = 1) -> list[str]:
    return [r.text for r in asyncio.run(model.answer(queries, samples=samples))]


def test_key_is_stable_and_only_grows_for_samples_and_tags() -> None:
    q = query("a")
    ident = {"backend": "fake", "model": "m"}
    assert cache_key(q, ident) == cache_key(q, ident, sample=0, tag="")
    assert len({cache_key(q, ident), cache_key(q, ident, sample=1), cache_key(q, ident, tag="ckpt-2")}) == 3
    # the key of a first, untagged sample is the same as before samples and tags existed
    before = (
        b'{"backend":{"backend":"fake","model":"m"},"messages":[{"content":"a","role":"user"}],'
        b'"params":{"max_tokens":16,"seed":0,"system_prompt":null,"temperature":0.0,"top_p":null}}'
    )
    assert cache_key(q, ident) == "resp:" + hashlib.sha256(before).hexdigest()


def test_no_cache_sends_again_and_replaces_answers(store: Store) -> None:
    replies = iter(["first", "second"])
    backend = FakeBackend(script=lambda q: next(replies))
    assert answer(CachedModel(backend, store, progress=False), [query("a")]) == ["first"]
    assert answer(CachedModel(backend, store, progress=False), [query("a")]) == ["first"]
    assert len(backend.calls) == 1
    fresh = CachedModel(backend, store, CachePolicy(refresh=True), progress=False)
    assert answer(fresh, [query("a"), query("a")]) == ["second", "second"]  # a duplicate is sent once
    assert len(backend.calls) == 2
    # the newest answer is the cached one from now on
    assert answer(CachedModel(backend, store, progress=False), [query("a")]) == ["second"]


def test_no_cache_never_replaces_an_answer_with_an_error(store: Store) -> None:
    backend = FakeBackend(script=lambda q: "kept")
    answer(CachedModel(backend, store, progress=False), [query("a")])
    failing = FakeBackend(script=lambda q: ResponseError(kind="http_500", message="down"))
    refreshing = CachedModel(failing, store, CachePolicy(refresh=True), progress=False)
    (response,) = asyncio.run(refreshing.answer([query("a")]))
    assert response.error is not None
    assert answer(CachedModel(backend, store, progress=False), [query("a")]) == ["kept"]


def test_cache_tags_keep_separate_caches(store: Store) -> None:
    backend = FakeBackend(script=lambda q: f"reply {len(backend.calls)}")
    plain = CachedModel(backend, store, progress=False)
    tagged = CachedModel(backend, store, CachePolicy(tag="ckpt-2"), progress=False)
    assert answer(plain, [query("a")]) == ["reply 1"]
    assert answer(tagged, [query("a")]) == ["reply 2"]
    assert answer(tagged, [query("a")]) == ["reply 2"]
    assert answer(plain, [query("a")]) == ["reply 1"]
    assert len(backend.calls) == 2
    with pytest.raises(BadInputError, match="cache-tag"):
        CachePolicy(tag="x" * 81)


def test_samples_are_cached_per_index_with_moving_seeds(store: Store) -> None:
    backend = FakeBackend(script=lambda q: f"seed {q.params.seed}")
    model = CachedModel(backend, store, progress=False)
    responses = asyncio.run(model.answer([query("a", 0.7), query("b", 0.7)], samples=3))
    assert [(r.prompt_id, r.sample, r.text) for r in responses] == [
        ("a", 0, "seed 0"),
        ("a", 1, "seed 1"),
        ("a", 2, "seed 2"),
        ("b", 0, "seed 0"),
        ("b", 1, "seed 1"),
        ("b", 2, "seed 2"),
    ]
    assert len({r.key for r in responses}) == 6
    # asking for more samples later sends only the new ones; the first ones come from the store
    more = asyncio.run(model.answer([query("a", 0.7)], samples=5))
    assert [r.cached for r in more] == [True, True, True, False, False]
    assert len(backend.calls) == 8
    with pytest.raises(BadInputError, match="samples"):
        asyncio.run(model.answer([query("a")], samples=0))


def test_a_replaced_answer_is_judged_again(store: Store) -> None:
    replies = iter(["Sure, here is how.", "I'm sorry, but I can't help with that."])
    backend = FakeBackend(script=lambda q: next(replies))
    prompts = [Prompt(id="a", text="a", category="c", label="benign")]
    judge = KeywordJudge()
    for policy, expected in ((CachePolicy(), "compliance"), (CachePolicy(refresh=True), "full_refusal")):
        responses = asyncio.run(CachedModel(backend, store, policy, progress=False).answer([query("a")]))
        (verdict,) = asyncio.run(judge_responses(judge, prompts, responses, store, progress=False))
        assert verdict is not None and verdict.label == expected


def test_answers_stored_before_reasoning_was_split_are_split_on_reading(store: Store) -> None:
    backend = FakeBackend(script=lambda q: "unused")
    model = CachedModel(backend, store, progress=False)
    old = Response(key=model.key(query("a")), prompt_id="a", model="m", text="<think>Fine.</think>\n\nI can't.")
    store.put_responses([old])
    (response,) = asyncio.run(model.answer([query("a")]))
    assert (response.text, response.reasoning, response.cached) == ("I can't.", "Fine.", True)
    assert backend.calls == []


# cache keys, hashing, records ----------------------------------------------------------------


def test_key_pins_samples_tags_images_and_non_ascii_text() -> None:
    image = Image(sha256="ab" * 32, media_type="image/png", data=b"png bytes")
    params = GenerateParams(system_prompt="Be brief.", max_tokens=16)
    prompt = Prompt(id="p1", text="café?", category="c", label="benign", image=image)
    q = Query.for_prompt(prompt, params)
    assert q.messages == (
        Message(role="system", content="Be brief."),
        Message(role="user", content="café?", image=image),
    )
    ident = {"backend": "fake", "model": "m"}
    value = (
        '{"backend":{"backend":"fake","model":"m"},"messages":[{"content":"Be brief.","role":"system"},'
        '{"content":"café?","image":"' + "ab" * 32 + '","role":"user"}],'
        '"params":{"max_tokens":16,"seed":0,"system_prompt":"Be brief.","temperature":0.0,"top_p":null},'
        '"sample":2,"tag":"ckpt-2"}'
    )
    assert cache_key(q, ident, sample=2, tag="ckpt-2") == "resp:" + hashlib.sha256(value.encode()).hexdigest()
    # without a system prompt the user message is the only one
    assert Query.for_prompt(prompt, GenerateParams()).messages == (Message(role="user", content="café?", image=image),)


def test_content_hash_is_the_bare_digest_without_a_prefix_and_refuses_nan() -> None:
    assert canonical_json({"b": "é", "a": [1, 2.5]}) == '{"a":[1,2.5],"b":"é"}'
    assert content_hash({"a": 1}) == hashlib.sha256(b'{"a":1}').hexdigest()
    assert content_hash({"a": 1}, prefix="p") == "p:" + hashlib.sha256(b'{"a":1}').hexdigest()
    with pytest.raises(ValueError, match="JSON compliant"):
        content_hash({"temperature": float("nan")})  # NaN is no JSON: it would make keys nobody can rebuild


def test_cache_tag_limits() -> None:
    assert CachePolicy(tag="x" * 80).tag == "x" * 80
    for bad in ("x" * 81, "ckpt\n2"):
        with pytest.raises(BadInputError, match="--cache-tag must be at most 80 printable characters"):
            CachePolicy(tag=bad)


def test_stored_answers_are_upgraded_only_when_their_thinking_was_not_split() -> None:
    def stored(text: str, **fields: object) -> Response:
        return Response(key="k", prompt_id="p", model="m", text=text, **fields)  # type: ignore[arg-type]

    bare_close = upgrade(stored("Fine.</think>\n\nI can't."))  # the template opened the block in the prompt
    assert (bare_close.text, bare_close.reasoning, bare_close.ended_in_reasoning) == ("I can't.", "Fine.", False)
    unfinished = upgrade(stored("<think>Still thinking"))
    assert (unfinished.text, unfinished.reasoning, unfinished.ended_in_reasoning) == ("", "Still thinking", True)
    for kept in (
        stored("No thinking here."),
        stored("<think>a</think>b", reasoning="split already"),
        stored("<think>a</think>b", error=ResponseError(kind="http_500", message="down")),
    ):
        assert upgrade(kept) is kept


# answering -----------------------------------------------------------------------------------


def test_samples_of_a_query_without_seed_are_sent_unchanged(store: Store) -> None:
    backend = FakeBackend(script=lambda q: f"seed {q.params.seed}")
    model = CachedModel(backend, store, progress=False)
    responses = asyncio.run(model.answer([query("a", 0.7, seed=None)], samples=2))
    assert [(r.sample, r.text) for r in responses] == [(0, "seed None"), (1, "seed None")]
    assert [q.params.seed for q in backend.calls] == [None, None]


def test_answer_partial_asks_once_by_default_and_names_the_samples_option(store: Store) -> None:
    model = CachedModel(FakeBackend(), store, progress=False)
    assert len(asyncio.run(model.answer_partial([query("a")])).responses) == 1
    with pytest.raises(BadInputError) as info:
        asyncio.run(model.answer_partial([query("a")], samples=0))
    assert str(info.value) == "--samples must be at least 1"


def test_one_request_answers_duplicates_and_each_prompt_keeps_its_id(store: Store) -> None:
    backend = FakeBackend(script=lambda q: "same")
    model = CachedModel(backend, store, progress=False)
    a1 = query("text")
    a2 = a1.model_copy(update={"prompt_id": "other prompt"})
    responses = asyncio.run(model.answer([a1, a2]))
    assert len(backend.calls) == 1
    assert [(r.prompt_id, r.text, r.cached) for r in responses] == [
        ("text", "same", False),
        ("other prompt", "same", True),
    ]
    again = asyncio.run(model.answer([a2, a1]))
    assert [(r.prompt_id, r.cached) for r in again] == [("other prompt", True), ("text", True)]


def test_new_answers_are_reported_as_they_arrive_not_stored_ones(store: Store) -> None:
    model = CachedModel(FakeBackend(script=lambda q: f"re {q.prompt_id}"), store, progress=False)
    asyncio.run(model.answer([query("a")]))
    seen: list[str] = []
    responses = asyncio.run(model.answer([query("a"), query("b")], on_response=lambda r: seen.append(r.text)))
    assert [r.text for r in responses] == ["re a", "re b"]
    assert seen == ["re b"]


def test_a_stopping_cause_keeps_what_was_answered_and_names_the_cause(store: Store) -> None:
    def script(q: Query) -> str:
        if q.prompt_id == "b":
            raise RunStopped("quota exhausted: add credit and run again")
        return f"re {q.prompt_id}"

    backend = FakeBackend(script=script, concurrency=1)
    model = CachedModel(backend, store, progress=False)
    asyncio.run(model.answer([query("c")]))  # answered by an earlier run
    answers = asyncio.run(model.answer_partial([query("a"), query("b"), query("c")]))
    assert answers.stopped == "quota exhausted: add credit and run again"
    assert [r.text if r else None for r in answers.responses] == ["re a", None, "re c"]
    with pytest.raises(RunStopped, match="^quota exhausted: add credit and run again$"):
        asyncio.run(model.answer([query("b")]))


class Gauge(FakeBackend):
    """A fake backend that measures how many requests are in flight at once (``slow``: seconds per prompt id)."""

    def __init__(self, concurrency: int, script: Script | None = None, slow: dict[str, float] | None = None) -> None:
        super().__init__(script=script or (lambda q: f"re {q.prompt_id}"), concurrency=concurrency)
        self.slow = slow or {}
        self.in_flight = 0
        self.peak = 0

    async def generate(self, query: Query, key: str) -> Response:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(self.slow.get(query.prompt_id, 0.01))
            return await super().generate(query, key)
        finally:
            self.in_flight -= 1


@pytest.mark.parametrize("concurrency", [1, 3])
def test_requests_in_flight_follow_the_backend_concurrency(store: Store, concurrency: int) -> None:
    backend = Gauge(concurrency)
    responses = asyncio.run(CachedModel(backend, store, progress=False).answer([query(t) for t in "abcdef"]))
    assert [r.text for r in responses] == [f"re {t}" for t in "abcdef"]
    assert backend.peak == concurrency


def test_leases_are_taken_a_few_waves_ahead_one_transaction_per_chunk(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[int, bool]] = []
    take_leases = Store.take_leases

    def spy(self: Store, keys: Sequence[str], *args: Any, **kwargs: Any) -> list[str]:
        calls.append((len(keys), bool(kwargs.get("answered_too"))))
        return take_leases(self, keys, *args, **kwargs)

    monkeypatch.setattr(Store, "take_leases", spy)
    asyncio.run(
        CachedModel(FakeBackend(concurrency=4), store, progress=False).answer([query(f"a{i}") for i in range(100)])
    )
    assert calls == [(64, False), (36, False)]  # at least 64 keys a chunk
    calls.clear()
    queries = [query(f"b{i}") for i in range(200)]
    asyncio.run(CachedModel(FakeBackend(concurrency=40), store, progress=False).answer(queries))
    assert calls == [(160, False), (40, False)]  # four waves of 40 requests
    calls.clear()
    refresh = CachedModel(FakeBackend(concurrency=40), store, CachePolicy(refresh=True), progress=False)
    asyncio.run(refresh.answer(queries[:10]))
    assert calls == [(10, True)]  # --no-cache leases the answered keys too, in the same transaction


def test_the_progress_bar_names_the_model_and_counts_requests_and_errors(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    backend = FakeBackend(
        script=lambda q: ResponseError(kind="http_500", message="down") if q.prompt_id == "b" else "ok"
    )
    asyncio.run(CachedModel(backend, store).answer([query("a"), query("b"), query("c")]))
    drawn = capsys.readouterr().err
    assert "fake-model answering" in drawn and "3/3" in drawn and "errors 1" in drawn
    asyncio.run(CachedModel(backend, store).answer([query("a"), query("c")]))  # all stored: nothing to draw
    assert capsys.readouterr().err == ""
    asyncio.run(CachedModel(backend, store, progress=False).answer([query("d")]))
    assert capsys.readouterr().err == ""


# other processes sharing the store -----------------------------------------------------------


ELSEWHERE = "another-host:1:token"
"""The lease owner of a live process on another machine."""


def dead_owner() -> str:
    """The lease owner of a process of this machine that no longer exists."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    return f"{socket.gethostname()}:{gone.pid}:token"


async def commit_later(store: Store, response: Response, delay_s: float = 0.3) -> None:
    """Another process answers ``response.key`` after ``delay_s`` and ends its lease."""
    await asyncio.sleep(delay_s)
    store.put_responses([response], replace=True)
    store.release_leases(ELSEWHERE)


def test_keys_other_processes_hold_are_awaited_and_a_dead_holders_keys_are_taken_over(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    backend = FakeBackend(script=lambda q: f"mine {q.prompt_id}", concurrency=2)
    model = CachedModel(backend, store)
    held, orphaned, free = query("held"), query("orphaned"), query("free")
    k_held = model.key(held)
    # an earlier attempt of the holder failed: that old error is not its answer
    store.put_responses([Response(key=k_held, prompt_id="held", model="m", error=ResponseError(kind="x", message="y"))])
    store.take_leases([k_held], ELSEWHERE, ttl_s=3600)
    store.take_leases([model.key(orphaned)], dead_owner(), ttl_s=3600)
    theirs = Response(key=k_held, prompt_id="held", model="m", text="theirs")
    seen: list[str] = []

    async def run() -> list[Response]:
        answers, _ = await asyncio.gather(
            model.answer([held, orphaned, free], on_response=lambda r: seen.append(r.text)),
            commit_later(store, theirs),
        )
        return answers

    responses = asyncio.run(asyncio.wait_for(run(), 20))
    assert [(r.text, r.cached) for r in responses] == [("theirs", True), ("mine orphaned", False), ("mine free", False)]
    assert sorted(q.prompt_id for q in backend.calls) == ["free", "orphaned"]
    assert sorted(seen) == ["mine free", "mine orphaned", "theirs"]
    assert "3/3" in capsys.readouterr().err
    assert store.lease_owners([model.key(q) for q in (held, orphaned, free)]) == {}


def test_with_no_cache_only_answers_committed_after_the_wait_began_count(store: Store) -> None:
    backend = FakeBackend(script=lambda q: f"new {q.prompt_id}", concurrency=2)
    plain = CachedModel(FakeBackend(script=lambda q: f"old {q.prompt_id}"), store, progress=False)
    held, orphaned = query("held"), query("orphaned")
    asyncio.run(plain.answer([held, orphaned]))
    model = CachedModel(backend, store, CachePolicy(refresh=True), progress=False)
    store.take_leases([model.key(held)], ELSEWHERE, ttl_s=3600, answered_too=True)
    store.take_leases([model.key(orphaned)], dead_owner(), ttl_s=3600, answered_too=True)
    theirs = Response(key=model.key(held), prompt_id="held", model="m", text="theirs, refreshed")

    async def run() -> list[Response]:
        answers, _ = await asyncio.gather(model.answer([held, orphaned]), commit_later(store, theirs))
        return answers

    responses = asyncio.run(asyncio.wait_for(run(), 20))
    assert [r.text for r in responses] == ["theirs, refreshed", "new orphaned"]
    assert [q.prompt_id for q in backend.calls] == ["orphaned"]


def test_an_interrupted_run_commits_what_arrived_and_ends_its_leases(store: Store) -> None:
    model = CachedModel(Gauge(2, script=lambda q: "fast", slow={"b": 10.0}), store, progress=False)

    async def run() -> None:
        task = asyncio.ensure_future(model.answer([query("a"), query("b")], on_response=lambda r: task.cancel()))
        with pytest.raises(asyncio.CancelledError):  # Ctrl-C as soon as the first answer is in
            await asyncio.wait_for(task, 5)

    asyncio.run(run())
    keys = [model.key(query("a")), model.key(query("b"))]
    assert list(store.get_responses(keys)) == [keys[0]]
    assert store.lease_owners(keys) == {}


def test_after_a_stop_no_request_is_left_in_flight(store: Store) -> None:
    def script(q: Query) -> str:
        if q.prompt_id == "b":
            raise RunStopped("the key was rejected: set a valid one")
        return "never"

    backend = Gauge(2, script=script, slow={"a": 10.0})

    async def run() -> Answers:
        answers = await CachedModel(backend, store, progress=False).answer_partial([query("a"), query("b")])
        assert backend.in_flight == 0  # the slow request was cancelled and has finished: the backend can be closed
        return answers

    answers = asyncio.run(asyncio.wait_for(run(), 5))
    assert answers.stopped == "the key was rejected: set a valid one"
    assert answers.responses == [None, None]


def test_a_process_awaiting_another_polls_the_store_every_tenth_of_a_second(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    polls: list[float] = []
    responses_since = Store.responses_since

    def spy(self: Store, *args: Any, **kwargs: Any) -> dict[str, Response]:
        polls.append(time.monotonic())
        return responses_since(self, *args, **kwargs)

    monkeypatch.setattr(Store, "responses_since", spy)
    model = CachedModel(FakeBackend(concurrency=2), store, progress=False)
    held = query("held")
    store.take_leases([model.key(held)], ELSEWHERE, ttl_s=3600)
    theirs = Response(key=model.key(held), prompt_id="held", model="m", text="theirs")

    async def run() -> list[Response]:
        answers, _ = await asyncio.gather(model.answer([held]), commit_later(store, theirs, delay_s=0.35))
        return answers

    assert [r.text for r in asyncio.run(asyncio.wait_for(run(), 20))] == ["theirs"]
    assert 2 <= len(polls) <= 8  # about one look every WAIT_POLL_S, not a busy loop


def test_keys_another_process_gives_back_are_sent_with_every_worker(store: Store) -> None:
    backend = Gauge(2, slow={"x1": 0.1, "x2": 0.1})
    model = CachedModel(backend, store, progress=False)
    x1, x2 = query("x1"), query("x2")
    store.take_leases([model.key(x1), model.key(x2)], ELSEWHERE, ttl_s=3600)

    async def give_back() -> None:  # the other process was interrupted before answering
        await asyncio.sleep(0.25)
        store.release_leases(ELSEWHERE)

    async def run() -> list[Response]:
        answers, _ = await asyncio.gather(model.answer([x1, x2]), give_back())
        return answers

    responses = asyncio.run(asyncio.wait_for(run(), 20))
    assert [(r.text, r.cached) for r in responses] == [("re x1", False), ("re x2", False)]
    assert backend.peak == 2  # both workers still there: the two requests went together


# bulk senders (--batch, --ray) ---------------------------------------------------------------


class ListBulk:
    """A bulk sender that answers every key it leases in one go, plus an answer nobody asked for."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, int]] = []

    async def send(
        self,
        pending: PendingQueries,
        take: Callable[[Sequence[str]], list[str]],
        deliver: Callable[[Sequence[Response]], None],
        bar: Bar,
    ) -> None:
        mine = take(list(pending))
        answers = []
        for key in mine:
            q, sample = pending[key]
            self.sent.append((q.prompt_id, sample))
            answers.append(Response(key=key, prompt_id=q.prompt_id, model="m", text=f"bulk {q.prompt_id}"))
        deliver([*answers, Response(key="resp:unknown", prompt_id="x", model="m", text="stray")])
        bar.advance(count=len(answers))


def test_a_bulk_sender_answers_what_it_leases_and_the_rest_goes_request_by_request(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    backend = FakeBackend(script=lambda q: f"single {q.prompt_id}", concurrency=2)
    bulk = ListBulk()
    model = CachedModel(backend, store, bulk=bulk)
    store.take_leases([model.key(query("b"))], dead_owner(), ttl_s=3600)  # leased by a process that died
    seen: list[tuple[str, int]] = []
    responses = asyncio.run(
        model.answer(
            [query("a"), query("b"), query("a")], samples=2, on_response=lambda r: seen.append((r.text, r.sample))
        )
    )
    assert [(r.text, r.sample, r.cached) for r in responses] == [
        ("bulk a", 0, False),
        ("bulk a", 1, False),
        ("single b", 0, False),
        ("bulk b", 1, False),
        ("bulk a", 0, True),  # the duplicate query: one answer for both
        ("bulk a", 1, True),
    ]
    assert bulk.sent == [("a", 0), ("a", 1), ("b", 1)]
    assert [q.prompt_id for q in backend.calls] == ["b"]
    assert seen == [("bulk a", 0), ("bulk a", 1), ("bulk b", 1), ("single b", 0)]
    assert "4/4" in capsys.readouterr().err
    stored = store.get_responses([r.key for r in responses])
    assert sorted((r.text, r.sample) for r in stored.values()) == [
        ("bulk a", 0),
        ("bulk a", 1),
        ("bulk b", 1),
        ("single b", 0),
    ]
    assert "resp:unknown" not in store.get_responses(["resp:unknown"])
    assert store.lease_owners(list(stored)) == {}


def test_a_bulk_sender_under_no_cache_resends_and_replaces_stored_answers(store: Store) -> None:
    backend = FakeBackend(script=lambda q: f"single {q.prompt_id}")
    asyncio.run(CachedModel(backend, store, progress=False).answer([query("a")]))
    bulk = ListBulk()
    fresh = CachedModel(backend, store, CachePolicy(refresh=True), progress=False, bulk=bulk)
    assert [r.text for r in asyncio.run(fresh.answer([query("a")]))] == ["bulk a"]
    assert bulk.sent == [("a", 0)] and len(backend.calls) == 1
    assert answer(CachedModel(backend, store, progress=False), [query("a")]) == ["bulk a"]
