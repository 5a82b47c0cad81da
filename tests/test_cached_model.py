"""The cached-model layer: cache keys, --no-cache, --cache-tag, samples."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from overrefusal.backends.fake import FakeBackend
from overrefusal.cached_model import CachedModel, CachePolicy, cache_key
from overrefusal.errors import BadInputError
from overrefusal.judges.keywords import KeywordJudge
from overrefusal.records import GenerateParams, Message, Prompt, Query, Response, ResponseError
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
