"""The store's contract, one rule per test, on a temporary SQLite file (fast: no servers, no models)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from overrefusal import store as store_module
from overrefusal.errors import RunError
from overrefusal.records import Response, ResponseError, Verdict
from overrefusal.store import (
    MIGRATION_TABLES,
    MIGRATIONS,
    RECOVER,
    ResponseCommitter,
    Store,
    StoreDamagedError,
    _retry_busy,
    backup_copy,
)


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


# opening: folders, connection settings, migrations ----------------------------------------------------------------


def _raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def _tables(path: Path) -> set[str]:
    db = _raw(path)
    try:
        return {str(r[0]) for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        db.close()


def _old_store(path: Path, version: int) -> None:
    """A store as an older release left it: the first ``version`` migrations applied."""
    db = _raw(path)
    for script in MIGRATIONS[:version]:
        db.executescript(script)
    db.execute(f"PRAGMA user_version={version}")
    db.close()


def test_opening_creates_the_folders_and_a_wal_store_that_waits_30_s_for_a_lock(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "s.sqlite3"
    with Store(path) as store:
        assert path.is_file()
        assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.db.execute("PRAGMA busy_timeout").fetchone()[0] == 30_000
        assert store.db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS) == 4
    assert _tables(path) == {name for tables in MIGRATION_TABLES for name in tables}


def test_the_store_serves_other_threads_and_commits_each_statement_at_once(store: Store) -> None:
    errors: list[BaseException] = []

    def work() -> None:
        try:
            store.put_responses([ok("a")])
            store.db.execute("INSERT INTO leases(key, owner, expires) VALUES ('k', 'o', 1)")  # outside transaction()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    assert errors == []
    other = _raw(store.path)  # another process sees both writes: nothing is left pending
    assert other.execute("SELECT key FROM responses").fetchall() == [("a",)]
    assert other.execute("SELECT key, owner FROM leases").fetchall() == [("k", "o")]
    other.close()


def test_an_older_store_is_migrated_keeping_its_records(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    _old_store(path, 2)
    db = _raw(path)
    db.execute("INSERT INTO responses(key, ok, body, created) VALUES ('a', 1, ?, 0)", (ok("a").model_dump_json(),))
    db.close()
    with Store(path) as store:
        assert store.db.execute("PRAGMA user_version").fetchone()[0] == 4
        assert store.get_responses(["a"])["a"].text == "answer"
        assert store.take_leases(["b"], "A", ttl_s=30) == ["b"]
    assert {"leases", "batch_jobs", "batch_requests"} <= _tables(path)


def test_an_up_to_date_store_opens_while_another_process_writes(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    Store(path).close()
    writer = _raw(path)
    writer.execute("BEGIN IMMEDIATE")  # holds the write lock
    opened: list[object] = []
    opener = threading.Thread(target=lambda: opened.append(Store(path)), daemon=True)
    try:
        opener.start()
        opener.join(timeout=10)
        assert len(opened) == 1 and isinstance(opened[0], Store)  # no write transaction was needed to open it
    finally:
        writer.execute("ROLLBACK")
        writer.close()
        opener.join()
        for store in opened:
            if isinstance(store, Store):
                store.close()


def test_closing_closes_the_connection_and_twice_is_harmless(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite3")
    db = store.db
    store.close()
    with pytest.raises(sqlite3.ProgrammingError):
        db.execute("SELECT 1")
    store.close()
    with pytest.raises(AssertionError, match="the store is closed"):
        store.get_responses(["a"])


# unwritable and damaged stores ------------------------------------------------------------------------------------


def test_a_folder_that_cannot_be_created_is_one_line_naming_the_fix(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunError) as info:
        Store(tmp_path / "file" / "sub" / "s.sqlite3")
    message = str(info.value)
    assert message.startswith(f"cannot create the store folder {tmp_path / 'file' / 'sub'}: ")
    assert message.endswith("; set OVERREFUSAL_HOME to a folder you can write")


def test_a_store_path_that_cannot_be_opened_is_unwritable_not_damaged(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    path.mkdir()  # a folder where the file should be
    with pytest.raises(RunError) as info:
        Store(path)
    assert not isinstance(info.value, StoreDamagedError)
    assert str(info.value) == (
        f"cannot write the store {path} (unable to open database file): set OVERREFUSAL_HOME to a folder you can write"
    )


@pytest.mark.parametrize(
    "error",
    ["attempt to write a readonly database", "read-only file system", "disk I/O error", "Permission denied"],
)
def test_sqlite_errors_that_mean_no_write_access_name_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: str
) -> None:
    def refuse(*args: object, **kwargs: object) -> sqlite3.Connection:
        raise sqlite3.OperationalError(error)

    monkeypatch.setattr(store_module.sqlite3, "connect", refuse)
    path = tmp_path / "s.sqlite3"
    with pytest.raises(RunError) as info:
        Store(path)
    assert not isinstance(info.value, StoreDamagedError)
    assert str(info.value) == f"cannot write the store {path} ({error}): set OVERREFUSAL_HOME to a folder you can write"


def _damaged_copies(path: Path) -> list[Path]:
    return sorted(p for p in path.parent.glob(f"{path.name}.damaged-*") if p.suffix != ".wal")


def test_a_damaged_page_is_one_line_naming_the_copy_and_the_repair(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    with Store(path) as store:
        store.put_responses([ok(f"k{i}", "x" * 300) for i in range(300)])
    data = bytearray(path.read_bytes())
    for page in (2, 4, 6, 7, 9, 11):  # five pages SQLite cannot read: a long quick_check report
        data[4096 * page : 4096 * page + 16] = b"\xff" * 16
    path.write_bytes(bytes(data))
    db = _raw(path)
    report = [str(r[0]) for r in db.execute("PRAGMA quick_check(5)")]
    db.close()
    detail = "; ".join(line for row in report for line in row.splitlines())
    assert len(detail) > 200
    with pytest.raises(StoreDamagedError) as info:
        Store(path)
    (copy,) = _damaged_copies(path)
    assert copy.read_bytes() == bytes(data)
    assert str(info.value) == f"the store {path} is damaged ({detail[:200]}); a copy is in {copy}; {RECOVER}"
    assert "\n" not in str(info.value)


def test_a_file_that_is_not_a_store_is_damage_even_when_no_copy_can_be_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "s.sqlite3"
    path.write_bytes(b"not a database " * 300)

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store_module.shutil, "copy2", disk_full)
    with pytest.raises(StoreDamagedError) as info:
        Store(path)
    assert str(info.value) == f"the store {path} is damaged (file is not a database); no copy could be made; {RECOVER}"


def test_a_store_missing_its_tables_is_damage(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    db = _raw(path)
    db.execute("CREATE TABLE unrelated (x)")
    db.execute("PRAGMA user_version=1")  # says the first migration ran, but its tables are gone
    db.close()
    with pytest.raises(StoreDamagedError) as info:
        Store(path)
    (copy,) = _damaged_copies(path)
    assert str(info.value) == (
        f"the store {path} is damaged (table responses, verdicts missing); a copy is in {copy}; {RECOVER}"
    )


def test_a_migration_that_fails_is_rolled_back_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    _old_store(path, 2)
    db = _raw(path)
    db.execute("CREATE TABLE leases_owner (x)")  # clashes with the index migration 3 creates after its table
    db.close()
    with pytest.raises(StoreDamagedError) as info:
        Store(path)
    (copy,) = _damaged_copies(path)
    assert str(info.value) == (
        f"the store {path} is damaged (there is already a table named leases_owner); a copy is in {copy}; {RECOVER}"
    )
    db = _raw(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == 2
    db.close()
    assert "leases" not in _tables(path)  # the table migration 3 had created is gone with it


def test_a_close_that_fails_does_not_hide_the_damage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class FailingClose(sqlite3.Connection):
        def close(self) -> None:
            super().close()
            raise sqlite3.OperationalError("disk I/O error")

    connect = sqlite3.connect
    monkeypatch.setattr(store_module.sqlite3, "connect", lambda *a, **k: connect(*a, **k, factory=FailingClose))
    path = tmp_path / "s.sqlite3"
    path.write_bytes(b"not a database " * 300)
    with pytest.raises(StoreDamagedError, match=r"\(file is not a database\)"):
        Store(path)


# copies aside -----------------------------------------------------------------------------------------------------


def test_backup_copy_copies_the_file_and_its_wal_under_the_utc_time(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    assert backup_copy(path, "damaged") is None  # nothing to copy
    path.write_bytes(b"main")
    path.with_name("s.sqlite3-wal").write_bytes(b"wal!")
    zone = os.environ.get("TZ")
    os.environ["TZ"] = "EAST-14"  # a local time 14 hours ahead of UTC
    time.tzset()
    try:
        copy = backup_copy(path, "before-repair")
    finally:
        if zone is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = zone
        time.tzset()
    assert copy is not None and copy.parent == tmp_path
    assert copy.name.startswith("s.sqlite3.before-repair-")
    stamp = datetime.strptime(copy.name.removeprefix("s.sqlite3.before-repair-") + "+0000", "%Y%m%d-%H%M%S%z")
    assert abs(stamp - datetime.now(timezone.utc)) < timedelta(minutes=5)
    assert copy.read_bytes() == b"main"
    assert copy.with_name(copy.name + ".wal").read_bytes() == b"wal!"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["s.sqlite3", "s.sqlite3-wal", copy.name, copy.name + ".wal"]
    )


def test_backup_copy_reuses_an_earlier_copy_of_the_same_size_only(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    path.write_bytes(b"12345678")
    (tmp_path / "s.sqlite3.damaged-20000101-000000").write_bytes(b"123")  # another size
    (tmp_path / "s.sqlite3.damaged-20000101-000001.wal").write_bytes(b"abcdefgh")  # a WAL copy, not a copy
    (tmp_path / "s.sqlite3.damaged-20000101-000002").mkdir()  # not a file
    before = set(tmp_path.iterdir())
    fresh = backup_copy(path, "damaged")
    assert fresh is not None and fresh not in before  # none of them was reused: a new copy
    assert fresh.name.startswith("s.sqlite3.damaged-") and fresh.read_bytes() == b"12345678"
    earlier = tmp_path / "s.sqlite3.damaged-20000101-000003"
    earlier.write_bytes(b"abcdefgh")  # same size: reused, even though newer copies sort after it
    fresh.unlink()
    assert backup_copy(path, "damaged") == earlier
    assert backup_copy(path, "before-repair") != earlier  # copies are reused per tag


# retrying a busy store --------------------------------------------------------------------------------------------


class _Clock:
    """Stands in for the store's ``time``: monotonic time moves only when a test says so; sleeps are recorded."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def time(self) -> float:
        return self.now


def _failing(clock: _Clock, messages: list[str], advances: list[float]) -> tuple[list[int], Callable[[], None]]:
    calls: list[int] = []

    def statement() -> None:
        calls.append(1)
        clock.now += advances[len(calls) - 1] if len(calls) <= len(advances) else 1.0
        if len(calls) <= len(messages):
            raise sqlite3.OperationalError(messages[len(calls) - 1])

    return calls, statement


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    fake = _Clock()
    monkeypatch.setattr(store_module, "time", fake)
    return fake


def test_a_locked_or_busy_store_is_retried_every_50_ms(clock: _Clock) -> None:
    calls, statement = _failing(clock, ["database is locked", "database is busy"], [0.0, 0.0])
    _retry_busy(statement)
    assert len(calls) == 3 and clock.sleeps == [0.05, 0.05]


def test_a_lock_is_waited_for_30_seconds_and_no_longer(clock: _Clock) -> None:
    locked = ["database is locked"] * 10
    calls, statement = _failing(clock, locked, [30.0, 0.5])  # exactly at the deadline, then just past it
    with pytest.raises(sqlite3.OperationalError, match="database is locked"):
        _retry_busy(statement)
    assert len(calls) == 2


def test_other_errors_are_not_retried(clock: _Clock) -> None:
    calls, statement = _failing(clock, ["no such table: x"] * 100, [])
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        _retry_busy(statement)
    assert len(calls) == 1 and clock.sleeps == []


# many keys, the committer's defaults ------------------------------------------------------------------------------


def test_leases_on_many_keys_cross_the_chunk_size(store: Store) -> None:
    keys = [f"k{i}" for i in range(1203)]
    assert store.take_leases(keys, "A", ttl_s=30) == keys
    owners = store.lease_owners(keys)
    assert sorted(owners) == sorted(keys) and {o for o, _ in owners.values()} == {"A"}


async def test_the_committer_by_default_commits_within_milliseconds_512_at_a_time_without_replacing(
    store: Store,
) -> None:
    store.put_responses([ok("a", "old")])
    committer = ResponseCommitter(store)
    committer.add(ok("a", "new"))
    await asyncio.sleep(0.3)
    assert store.count_responses() == (1, 0) and store.get_responses(["a"])["a"].text == "old"
    for i in range(511):
        committer.add(ok(f"k{i}"))
    assert store.count_responses() == (1, 0)  # 511 queued: the timer commits them
    committer.add(ok("k511"))
    assert store.count_responses() == (513, 0)  # the 512th filled the batch


async def test_the_committer_keeps_its_timer_after_an_early_flush(store: Store) -> None:
    committer = ResponseCommitter(store, max_delay_s=0.01)
    committer.add(ok("a"))
    committer.flush()
    await asyncio.sleep(0.2)
    committer.add(ok("b"))  # a new timer commits this one
    await asyncio.sleep(0.3)
    assert store.count_responses() == (2, 0)
