"""The store's contract, one rule per test, on a temporary SQLite file (fast: no servers, no models)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from overrefusal.records import Response, ResponseError, Verdict
from overrefusal.store import ResponseCommitter, Store, StoreDamagedError


def ok(key: str, text: str = "answer") -> Response:
    return Response(key=key, prompt_id="p-" + key, model="m", text=text)


def failed(key: str) -> Response:
    return Response(key=key, prompt_id="p-" + key, model="m", error=ResponseError(kind="timeout", message="late"))


def test_answers_are_cache_hits_and_errors_are_not(store: Store) -> None:
    store.put_responses([ok("a"), failed("b")])
    found = store.get_responses(["a", "b", "c"])
    assert list(found) == ["a"] and found["a"].cached and found["a"].text == "answer"
    both = store.get_responses(["a", "b"], include_errors=True)
    assert set(both) == {"a", "b"} and both["b"].error is not None and both["b"].cached
    assert store.count_responses() == (1, 1)


def test_an_error_never_replaces_an_answer_and_an_answer_replaces_an_error(store: Store) -> None:
    store.put_responses([ok("a", "first")])
    store.put_responses([failed("a")], replace=True)
    assert store.get_responses(["a"])["a"].text == "first"
    store.put_responses([failed("b")])
    store.put_responses([ok("b", "later")])
    assert store.get_responses(["b"])["b"].text == "later"
    assert store.count_responses() == (2, 0)


def test_an_answer_is_replaced_only_with_replace(store: Store) -> None:
    store.put_responses([ok("a", "first")])
    store.put_responses([ok("a", "second")])
    assert store.get_responses(["a"])["a"].text == "first"
    store.put_responses([ok("a", "third")], replace=True)
    assert store.get_responses(["a"])["a"].text == "third"


def test_a_cached_flag_is_never_stored(store: Store) -> None:
    store.put_responses([ok("a").model_copy(update={"cached": True})])
    raw = store.db.execute("SELECT body FROM responses WHERE key = 'a'").fetchone()[0]
    assert '"cached":false' in raw.replace(" ", "")


def test_lookups_of_many_keys_cross_the_chunk_size(store: Store) -> None:
    keys = [f"k{i}" for i in range(1203)]
    store.put_responses([ok(k) for k in keys])
    assert len(store.get_responses(keys)) == 1203
    judge = "judge-1"
    verdict = Verdict(response_key="r", prompt_id="p", label="compliance", judge="j", judge_version="1")
    store.put_verdicts(judge, [(k, verdict) for k in keys])
    assert len(store.get_verdicts(judge, keys)) == 1203
    assert store.get_verdicts("judge-2", keys) == {}


def test_responses_since_keeps_answers_and_only_new_errors(store: Store) -> None:
    store.put_responses([ok("old-answer"), failed("old-error")])
    time.sleep(0.01)
    since = time.time()
    time.sleep(0.01)
    store.put_responses([ok("new-answer"), failed("new-error")])
    keys = ["old-answer", "old-error", "new-answer", "new-error", "missing"]
    assert set(store.responses_since(keys, since)) == {"old-answer", "new-answer", "new-error"}
    assert set(store.responses_since(keys, since, fresh_only=True)) == {"new-answer", "new-error"}
    assert store.responses_since(["missing"], since) == {}


def test_verdicts_are_replaced_per_judge_and_key(store: Store) -> None:
    first = Verdict(response_key="r", prompt_id="p", label="compliance", judge="j", judge_version="1")
    second = first.model_copy(update={"label": "full_refusal"})
    store.put_verdicts("J", [("a", first)])
    store.put_verdicts("J", [("a", second)])
    store.put_verdicts("K", [("a", first)])
    assert store.get_verdicts("J", ["a"])["a"].label == "full_refusal"
    assert store.get_verdicts("K", ["a"])["a"].label == "compliance"


def test_leases_go_to_one_owner_skip_answered_keys_and_expire(store: Store) -> None:
    store.put_responses([ok("done"), failed("erred")])
    assert store.take_leases(["x", "done", "erred", "y"], "A", ttl_s=30) == ["x", "erred", "y"]
    assert store.take_leases(["x", "z"], "B", ttl_s=30) == ["z"]
    assert store.take_leases(["x"], "A", ttl_s=30) == ["x"]  # a holder takes its own lease again
    assert store.take_leases(["done"], "B", ttl_s=30, answered_too=True) == ["done"]  # --no-cache
    owners = store.lease_owners(["x", "z", "nobody"])
    assert {k: o for k, (o, _) in owners.items()} == {"x": "A", "z": "B"}
    assert owners["x"][1] > time.time() + 25
    assert store.take_leases(["q"], "A", ttl_s=-1) == ["q"]  # already expired
    assert store.take_leases(["q"], "B", ttl_s=30) == ["q"]
    assert store.take_leases(["x"], "C", ttl_s=30, dead=["A"]) == ["x"]  # a dead holder's leases end
    assert store.take_leases([], "C", ttl_s=30) == []


def test_renewed_leases_last_and_released_ones_are_free(store: Store) -> None:
    store.take_leases(["a", "b"], "A", ttl_s=0.0)
    store.renew_leases("A", ttl_s=30)
    assert store.take_leases(["a", "b"], "B", ttl_s=30) == []
    store.release_leases("A")
    assert store.take_leases(["a", "b"], "B", ttl_s=30) == ["a", "b"]


def test_a_failed_transaction_leaves_nothing(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction() as db:
        db.execute("INSERT INTO leases(key, owner, expires) VALUES ('k', 'o', 1)")
        raise RuntimeError("boom")
    assert store.lease_owners(["k"]) == {}
    assert not store.db.in_transaction


def test_a_record_that_is_not_json_is_reported_as_damage(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    with Store(path) as store:
        store.put_responses([ok("a")])
        store.put_verdicts("J", [("a", Verdict(response_key="a", prompt_id="p", label="compliance", judge="j",
                                                judge_version="1"))])  # fmt: skip
    with sqlite3.connect(path) as db:
        db.execute("UPDATE responses SET body = 'not json'")
        db.execute("UPDATE verdicts SET body = '[]'")
    with Store(path) as store:
        with pytest.raises(StoreDamagedError, match="the response a is not a valid record"):
            store.get_responses(["a"])
        with pytest.raises(StoreDamagedError, match="the verdict on a is not a valid record"):
            store.get_verdicts("J", ["a"])


async def test_the_committer_commits_within_its_delay_and_at_its_batch_size(store: Store) -> None:
    committer = ResponseCommitter(store, max_delay_s=0.05, max_batch=3)
    committer.add(ok("a"))
    assert store.count_responses() == (0, 0)  # not yet
    await asyncio.sleep(0.2)
    assert store.count_responses() == (1, 0)  # within the delay
    for key in ("b", "c", "d"):
        committer.add(ok(key))
    assert store.count_responses() == (4, 0)  # the third queued answer filled the batch
    committer.add(ok("e"))
    committer.flush()
    assert store.count_responses() == (5, 0)
    committer.flush()  # nothing queued: nothing happens


async def test_a_replacing_committer_replaces(store: Store) -> None:
    store.put_responses([ok("a", "old")])
    committer = ResponseCommitter(store, replace=True)
    committer.add(ok("a", "new"))
    committer.flush()
    assert store.get_responses(["a"])["a"].text == "new"
