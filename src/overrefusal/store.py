"""The one SQLite store: responses keyed by query hash, verdicts keyed by (answer, judge configuration).

Every response is committed as soon as it arrives (WAL mode), so a killed run loses
nothing it had received. Errored responses are kept for the record but are not cache
hits: a re-run retries them. Fast backends commit through :class:`ResponseCommitter`,
which groups the responses that arrive within a few milliseconds into one transaction.

A damaged file (a bad page, a missing table, a row that is not a record) is reported as one
:class:`StoreDamagedError` line that names ``overrefusal store check`` / ``overrefusal store repair``;
the file is copied aside first, so nothing more can be lost.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime, timezone
from pathlib import Path

from pydantic import ValidationError

from overrefusal import paths
from overrefusal.errors import RunError
from overrefusal.records import Response, Verdict

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE responses (
        key TEXT PRIMARY KEY,
        ok INTEGER NOT NULL,
        body TEXT NOT NULL,
        created REAL NOT NULL
    );
    CREATE TABLE verdicts (
        response_key TEXT NOT NULL,
        judge_key TEXT NOT NULL,
        body TEXT NOT NULL,
        created REAL NOT NULL,
        PRIMARY KEY (response_key, judge_key)
    );
    """,
    # 2: benchmark generation state (overrefusal.generation.records_store)
    """
    CREATE TABLE gen_records (
        project TEXT NOT NULL,
        kind TEXT NOT NULL,
        id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        body TEXT NOT NULL,
        created REAL NOT NULL,
        PRIMARY KEY (project, kind, id)
    );
    CREATE INDEX gen_records_order ON gen_records(project, kind, seq);
    CREATE TABLE gen_stages (
        project TEXT NOT NULL,
        stage TEXT NOT NULL,
        body TEXT NOT NULL,
        created REAL NOT NULL,
        PRIMARY KEY (project, stage)
    );
    """,
    # 3: leases on query keys, so that processes sharing the store never send one request twice
    """
    CREATE TABLE leases (
        key TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        expires REAL NOT NULL
    );
    CREATE INDEX leases_owner ON leases(owner);
    """,
    # 4: provider batch jobs and the requests each holds (overrefusal.batches.jobs)
    """
    CREATE TABLE batch_jobs (
        id TEXT PRIMARY KEY,
        done INTEGER NOT NULL,
        body TEXT NOT NULL,
        created REAL NOT NULL
    );
    CREATE TABLE batch_requests (
        job TEXT NOT NULL,
        custom_id TEXT NOT NULL,
        key TEXT NOT NULL,
        prompt_id TEXT NOT NULL,
        sample INTEGER NOT NULL,
        PRIMARY KEY (job, custom_id)
    );
    CREATE INDEX batch_requests_key ON batch_requests(key);
    """,
)

MIGRATION_TABLES: tuple[tuple[str, ...], ...] = (
    ("responses", "verdicts"),
    ("gen_records", "gen_stages"),
    ("leases",),
    ("batch_jobs", "batch_requests"),
)
"""The tables each migration creates (a migrated store must hold them all)."""

RECOVER = "run `overrefusal store repair` to keep every readable record (or move the file away to start afresh)"


class StoreDamagedError(RunError):
    """The store file is damaged; the message says where its copy is and how to recover."""


def backup_copy(path: Path, tag: str) -> Path | None:
    """Copy ``path`` (and its WAL file) to ``<path>.<tag>-<UTC time>``; None when nothing could be copied.

    A copy of the same size made earlier is reused, so repeated attempts do not fill the disk.
    """
    if not path.is_file():
        return None
    size = path.stat().st_size
    for earlier in sorted(path.parent.glob(f"{path.name}.{tag}-*")):
        if earlier.suffix not in (".wal",) and earlier.is_file() and earlier.stat().st_size == size:
            return earlier
    target = path.with_name(f"{path.name}.{tag}-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}")
    try:
        shutil.copy2(path, target)
        wal = path.with_name(path.name + "-wal")
        if wal.is_file():
            shutil.copy2(wal, target.with_name(target.name + ".wal"))
    except OSError:
        return None
    return target


def _is_unwritable(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return any(s in text for s in ("readonly", "read-only", "unable to open", "disk i/o", "permission"))


def _retry_busy(statement: Callable[[], object], seconds: float = 30.0) -> None:
    """Run ``statement``, retrying while another process holds the lock it needs.

    Switching to WAL and starting a write transaction can fail at once with "database is
    locked" when another process opens a new store at the same moment (SQLite's busy timeout
    does not cover every case).
    """
    deadline = time.monotonic() + seconds
    while True:
        try:
            statement()
            return
        except sqlite3.OperationalError as exc:
            if ("locked" not in str(exc) and "busy" not in str(exc)) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class Store:
    """Thread-safe access to the SQLite store."""

    def __init__(self, path: Path | None = None, *, check: bool = True) -> None:
        """Open (and migrate) the store at ``path``, by default ``$OVERREFUSAL_HOME/store.sqlite3``.

        Args:
            path: the SQLite file.
            check: run SQLite's ``quick_check`` and look for every table (a damaged file raises
                :class:`StoreDamagedError` after copying it aside).

        Raises:
            RunError: the file cannot be created or written (one line naming the fix).
            StoreDamagedError: the file is damaged.
        """
        self.path = path or paths.store_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunError(
                f"cannot create the store folder {self.path.parent}: {exc.strerror}; set OVERREFUSAL_HOME "
                "to a folder you can write"
            ) from None
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            _retry_busy(lambda: self.db.execute("PRAGMA journal_mode=WAL"))
            self.db.execute("PRAGMA synchronous=NORMAL")
            if check:
                self._check_on_open()
            self._migrate()
        except sqlite3.OperationalError as exc:
            self._close_quietly()
            if _is_unwritable(exc):
                raise RunError(
                    f"cannot write the store {self.path} ({exc}): set OVERREFUSAL_HOME to a folder you can write"
                ) from None
            raise self.damaged(str(exc)) from None
        except sqlite3.DatabaseError as exc:
            self._close_quietly()
            raise self.damaged(str(exc)) from None
        except StoreDamagedError:
            self._close_quietly()
            raise

    @property
    def db(self) -> sqlite3.Connection:
        """The open connection."""
        assert self._db is not None, "the store is closed"
        return self._db

    def _close_quietly(self) -> None:
        if self._db is not None:
            with suppress(sqlite3.Error):
                self._db.close()

    def damaged(self, detail: str) -> StoreDamagedError:
        """The error for a damaged store: copies the file aside first and says where the copy is."""
        copy = backup_copy(self.path, "damaged")
        where = f"a copy is in {copy}" if copy is not None else "no copy could be made"
        return StoreDamagedError(f"the store {self.path} is damaged ({detail}); {where}; {RECOVER}")

    def _check_on_open(self) -> None:
        """A fast structural check: SQLite's ``quick_check`` plus the tables a migrated store must hold."""
        version = int(self.db.execute("PRAGMA user_version").fetchone()[0])
        if version == 0:
            return  # a new store
        rows = [str(r[0]) for r in self.db.execute("PRAGMA quick_check(5)").fetchall()]
        if rows != ["ok"]:
            # one row can hold several lines ("*** in database main ***\nPage 7: ..."): the error stays one line
            raise self.damaged("; ".join(line for row in rows for line in row.splitlines())[:200])
        present = {str(r[0]) for r in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        expected = [name for tables in MIGRATION_TABLES[:version] for name in tables]
        missing = [name for name in expected if name not in present]
        if missing:
            raise self.damaged(f"table {', '.join(missing)} missing")

    @contextmanager
    def _guarded(self) -> Iterator[sqlite3.Connection]:
        """The connection under the store's lock; SQLite damage found mid-run becomes :class:`StoreDamagedError`."""
        with self._lock:
            try:
                yield self.db
            except sqlite3.OperationalError as exc:
                if "locked" in str(exc) or "busy" in str(exc) or _is_unwritable(exc):
                    raise RunError(f"cannot write the store {self.path}: {exc}") from None
                raise self.damaged(str(exc)) from None
            except sqlite3.DatabaseError as exc:
                raise self.damaged(str(exc)) from None

    def _migrate(self) -> None:
        """Apply the missing migrations in one write transaction (safe when several processes open a new store)."""
        with self._lock:
            if int(self.db.execute("PRAGMA user_version").fetchone()[0]) >= len(MIGRATIONS):
                return
            _retry_busy(lambda: self.db.execute("BEGIN IMMEDIATE"))
            try:
                version = int(self.db.execute("PRAGMA user_version").fetchone()[0])  # another process may have won
                for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                    for statement in script.split(";"):
                        if statement.strip():
                            self.db.execute(statement)
                    self.db.execute(f"PRAGMA user_version={number}")
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._close_quietly()
            self._db = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Run statements on the connection in one transaction, under the store's lock.

        For modules that own their own tables (added through :data:`MIGRATIONS`).
        """
        with self._guarded() as db:
            db.execute("BEGIN")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

    # responses -------------------------------------------------------------------------
    def put_responses(self, responses: Iterable[Response], replace: bool = False) -> None:
        """Commit responses in one transaction.

        A stored successful response is never overwritten by an error; it is overwritten by a new
        successful one only with ``replace`` (``--no-cache``).
        """
        condition = "responses.ok = 0 OR excluded.ok = 1" if replace else "responses.ok = 0"
        now = time.time()
        rows = [
            (
                r.key,
                int(r.ok),
                r.model_copy(update={"cached": False}).model_dump_json() if r.cached else r.model_dump_json(),
                now,
            )
            for r in responses
        ]
        with self.transaction() as db:
            db.executemany(
                "INSERT INTO responses(key, ok, body, created) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET ok=excluded.ok, body=excluded.body, "
                f"created=excluded.created WHERE {condition}",
                rows,
            )

    def get_responses(self, keys: Sequence[str], include_errors: bool = False) -> dict[str, Response]:
        """Return stored responses for ``keys``; errors only when ``include_errors``."""
        found: dict[str, Response] = {}
        with self._guarded() as db:
            for start in range(0, len(keys), 500):
                chunk = list(keys[start : start + 500])
                marks = ",".join("?" * len(chunk))
                sql = f"SELECT key, body FROM responses WHERE key IN ({marks})"  # noqa: S608 - placeholders only
                if not include_errors:
                    sql += " AND ok = 1"
                for key, body in db.execute(sql, chunk):
                    try:
                        response = Response.model_validate_json(body).model_copy(update={"cached": True})
                    except ValidationError:
                        raise self.damaged(f"the response {key} is not a valid record") from None
                    found[response.key] = response
        return found

    def responses_since(self, keys: Sequence[str], since: float, fresh_only: bool = False) -> dict[str, Response]:
        """Responses for ``keys``: answers, and errors committed at or after ``since`` (epoch seconds).

        With ``fresh_only``, answers committed before ``since`` are left out too.
        """
        found = self.get_responses(keys, include_errors=True)
        if not found:
            return found
        with self._guarded() as db:
            marks = ",".join("?" * len(found))
            which = "" if fresh_only else "ok = 0 AND "
            sql = f"SELECT key FROM responses WHERE key IN ({marks}) AND {which}created < ?"  # noqa: S608
            old = {str(r[0]) for r in db.execute(sql, [*found, since])}
        return {k: v for k, v in found.items() if k not in old}

    def count_responses(self) -> tuple[int, int]:
        """(successful, errored) response counts."""
        with self._guarded() as db:
            rows = dict(db.execute("SELECT ok, COUNT(*) FROM responses GROUP BY ok").fetchall())
        return int(rows.get(1, 0)), int(rows.get(0, 0))

    # leases ----------------------------------------------------------------------------
    def take_leases(
        self, keys: Sequence[str], owner: str, ttl_s: float, dead: Iterable[str] = (), answered_too: bool = False
    ) -> list[str]:
        """Lease the ``keys`` nobody else holds (or whose lease expired, or whose owner is in ``dead``).

        A key that already has a stored answer is not leased unless ``answered_too``. Returns the keys
        now held by ``owner``.
        """
        if not keys:
            return []
        now = time.time()
        gone = list(dead)
        with self.transaction() as db:
            if gone:
                db.executemany("DELETE FROM leases WHERE owner = ?", [(o,) for o in gone])
            db.executemany(
                "INSERT INTO leases(key, owner, expires) SELECT ?1, ?2, ?3 "
                "WHERE ?5 OR NOT EXISTS (SELECT 1 FROM responses WHERE key = ?1 AND ok = 1) "
                "ON CONFLICT(key) DO UPDATE SET owner = excluded.owner, expires = excluded.expires "
                "WHERE leases.expires < ?4 OR leases.owner = excluded.owner",
                [(k, owner, now + ttl_s, now, int(answered_too)) for k in keys],
            )
            held: list[str] = []
            for start in range(0, len(keys), 500):
                chunk = list(keys[start : start + 500])
                marks = ",".join("?" * len(chunk))
                sql = f"SELECT key FROM leases WHERE owner = ? AND key IN ({marks})"  # noqa: S608
                held.extend(str(r[0]) for r in db.execute(sql, [owner, *chunk]))
        order = {k: i for i, k in enumerate(keys)}
        return sorted(held, key=order.__getitem__)

    def lease_owners(self, keys: Sequence[str]) -> dict[str, tuple[str, float]]:
        """Key -> (owner, expiry time) for the ``keys`` that are leased."""
        found: dict[str, tuple[str, float]] = {}
        with self._guarded() as db:
            for start in range(0, len(keys), 500):
                chunk = list(keys[start : start + 500])
                marks = ",".join("?" * len(chunk))
                sql = f"SELECT key, owner, expires FROM leases WHERE key IN ({marks})"  # noqa: S608
                for key, owner, expires in db.execute(sql, chunk):
                    found[str(key)] = (str(owner), float(expires))
        return found

    def renew_leases(self, owner: str, ttl_s: float) -> None:
        """Push back the expiry of every lease ``owner`` holds."""
        with self.transaction() as db:
            db.execute("UPDATE leases SET expires = ? WHERE owner = ?", (time.time() + ttl_s, owner))

    def release_leases(self, owner: str) -> None:
        """End every lease ``owner`` holds."""
        with self.transaction() as db:
            db.execute("DELETE FROM leases WHERE owner = ?", (owner,))

    # verdicts --------------------------------------------------------------------------
    def put_verdicts(self, judge_key: str, verdicts: Iterable[tuple[str, Verdict]]) -> None:
        """Commit ``(answer key, verdict)`` pairs of one judge configuration (``judge_key``) in one transaction."""
        now = time.time()
        rows = [(key, judge_key, v.model_dump_json(), now) for key, v in verdicts]
        with self.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO verdicts(response_key, judge_key, body, created) VALUES (?, ?, ?, ?)",
                rows,
            )

    def get_verdicts(self, judge_key: str, keys: Sequence[str]) -> dict[str, Verdict]:
        """Cached verdicts of ``judge_key``, by the answer keys they were stored under."""
        found: dict[str, Verdict] = {}
        with self._guarded() as db:
            for start in range(0, len(keys), 500):
                chunk = list(keys[start : start + 500])
                marks = ",".join("?" * len(chunk))
                sql = f"SELECT response_key, body FROM verdicts WHERE judge_key = ? AND response_key IN ({marks})"  # noqa: S608
                for key, body in db.execute(sql, [judge_key, *chunk]):
                    try:
                        found[key] = Verdict.model_validate_json(body)
                    except ValidationError:
                        raise self.damaged(f"the verdict on {key} is not a valid record") from None
        return found


class ResponseCommitter:
    """Commits responses from an event loop within ``max_delay_s`` of their arrival, in batches.

    One transaction per response costs more CPU than an HTTP request to a fast local server;
    grouping the responses that arrive within a few milliseconds keeps the harness off the
    critical path. A process killed with ``kill -9`` loses at most the responses of the last
    ``max_delay_s`` (they are requested again on resume); everything older is committed.
    :meth:`flush` (called on every exit path, Ctrl-C included) commits the rest.
    """

    def __init__(
        self,
        store: Store,
        max_delay_s: float = 0.005,
        max_batch: int = 512,
        replace: bool = False,
    ) -> None:
        """Create a committer for ``store`` (``replace``: see :meth:`Store.put_responses`); use it in an event loop."""
        self._store = store
        self._replace = replace
        self._max_delay_s = max_delay_s
        self._max_batch = max_batch
        self._pending: list[Response] = []
        self._timer: asyncio.TimerHandle | None = None

    def add(self, response: Response) -> None:
        """Queue ``response``; it is committed within ``max_delay_s``."""
        self._pending.append(response)
        if len(self._pending) >= self._max_batch:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._max_delay_s, self.flush)

    def flush(self) -> None:
        """Commit everything queued now."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._pending:
            self._store.put_responses(
                self._pending, self._replace
            )  # on failure they stay queued, and the final flush raises
            self._pending = []
