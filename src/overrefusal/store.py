"""The one SQLite store: responses keyed by query hash, verdicts keyed by (answer, judge configuration).

Every response is committed as soon as it arrives (WAL mode), so a killed run loses
nothing it had received. Errored responses are kept for the record but are not cache
hits: a re-run retries them. Fast backends commit through :class:`ResponseCommitter`,
which groups the responses that arrive within a few milliseconds into one transaction.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

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
)


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

    def __init__(self, path: Path | None = None) -> None:
        """Open (and migrate) the store at ``path``, by default ``$OVERREFUSAL_HOME/store.sqlite3``."""
        self.path = path or paths.store_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            _retry_busy(lambda: self._db.execute("PRAGMA journal_mode=WAL"))
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise RunError(
                f"cannot open the store {self.path}: {exc}; move that file away (or set OVERREFUSAL_HOME) "
                "to start a new store"
            ) from None

    def _migrate(self) -> None:
        """Apply the missing migrations in one write transaction (safe when several processes open a new store)."""
        with self._lock:
            if int(self._db.execute("PRAGMA user_version").fetchone()[0]) >= len(MIGRATIONS):
                return
            _retry_busy(lambda: self._db.execute("BEGIN IMMEDIATE"))
            try:
                version = int(self._db.execute("PRAGMA user_version").fetchone()[0])  # another process may have won
                for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                    for statement in script.split(";"):
                        if statement.strip():
                            self._db.execute(statement)
                    self._db.execute(f"PRAGMA user_version={number}")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Run statements on the connection in one transaction, under the store's lock.

        For modules that own their own tables (added through :data:`MIGRATIONS`).
        """
        with self._lock:
            self._db.execute("BEGIN")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
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
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany(
                    "INSERT INTO responses(key, ok, body, created) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET ok=excluded.ok, body=excluded.body, "
                    f"created=excluded.created WHERE {condition}",
                    rows,
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def get_responses(self, keys: Sequence[str], include_errors: bool = False) -> dict[str, Response]:
        """Return stored responses for ``keys``; errors only when ``include_errors``."""
        found: dict[str, Response] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = list(keys[start : start + 500])
                marks = ",".join("?" * len(chunk))
                sql = f"SELECT body FROM responses WHERE key IN ({marks})"  # noqa: S608 - placeholders only
                if not include_errors:
                    sql += " AND ok = 1"
                for (body,) in self._db.execute(sql, chunk):
                    response = Response.model_validate_json(body).model_copy(update={"cached": True})
                    found[response.key] = response
        return found

    def count_responses(self) -> tuple[int, int]:
        """(successful, errored) response counts."""
        with self._lock:
            rows = dict(self._db.execute("SELECT ok, COUNT(*) FROM responses GROUP BY ok").fetchall())
        return int(rows.get(1, 0)), int(rows.get(0, 0))

    # verdicts --------------------------------------------------------------------------
    def put_verdicts(self, judge_key: str, verdicts: Iterable[tuple[str, Verdict]]) -> None:
        """Commit ``(answer key, verdict)`` pairs of one judge configuration (``judge_key``) in one transaction."""
        now = time.time()
        rows = [(key, judge_key, v.model_dump_json(), now) for key, v in verdicts]
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany(
                    "INSERT OR REPLACE INTO verdicts(response_key, judge_key, body, created) VALUES (?, ?, ?, ?)",
                    rows,
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def get_verdicts(self, judge_key: str, keys: Sequence[str]) -> dict[str, Verdict]:
        """Cached verdicts of ``judge_key``, by the answer keys they were stored under."""
        found: dict[str, Verdict] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = list(keys[start : start + 500])
                marks = ",".join("?" * len(chunk))
                sql = f"SELECT response_key, body FROM verdicts WHERE judge_key = ? AND response_key IN ({marks})"
                for key, body in self._db.execute(sql, [judge_key, *chunk]):
                    found[key] = Verdict.model_validate_json(body)
        return found


class ResponseCommitter:
    """Commits responses from an event loop within ``max_delay_s`` of their arrival, in batches.

    One transaction per response costs more CPU than an HTTP request to a fast local server;
    grouping the responses that arrive within a few milliseconds keeps the harness off the
    critical path. A process killed with ``kill -9`` loses at most the responses of the last
    ``max_delay_s`` (they are requested again on resume); everything older is committed.
    :meth:`flush` (called on every exit path, Ctrl-C included) commits the rest.
    """

    def __init__(self, store: Store, max_delay_s: float = 0.005, max_batch: int = 512, replace: bool = False) -> None:
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
