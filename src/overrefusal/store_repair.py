"""``overrefusal store check`` and ``store repair``: find damage in the store, and rebuild it from what is readable.

The check runs SQLite's full ``integrity_check``, looks for every table and validates every stored record.
The repair copies the file aside, reads every row it still can (row by row around damaged pages), keeps the
rows that are valid records, writes them to a new store and puts it in place of the old one.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from overrefusal.errors import RunError
from overrefusal.records import Response, Verdict
from overrefusal.store import MIGRATION_TABLES, Store, backup_copy

BATCH = 256


def _valid_response(body: object) -> bool:
    try:
        Response.model_validate_json(str(body))
    except ValidationError:
        return False
    return True


def _valid_verdict(body: object) -> bool:
    try:
        Verdict.model_validate_json(str(body))
    except ValidationError:
        return False
    return True


def _valid_json(body: object) -> bool:
    try:
        json.loads(str(body))
    except ValueError:
        return False
    return True


# table -> (its columns, the check of its body column)
_TABLES: dict[str, tuple[tuple[str, ...], Callable[[object], bool] | None]] = {
    "responses": (("key", "ok", "body", "created"), _valid_response),
    "verdicts": (("response_key", "judge_key", "body", "created"), _valid_verdict),
    "gen_records": (("project", "kind", "id", "seq", "body", "created"), _valid_json),
    "gen_stages": (("project", "stage", "body", "created"), _valid_json),
    "leases": (("key", "owner", "expires"), None),  # leases are not worth keeping: they expire
    "batch_jobs": (("id", "done", "body", "created"), _valid_json),
    "batch_requests": (("job", "custom_id", "key", "prompt_id", "sample"), lambda row: True),
}
UNCOUNTED = ("leases", "batch_requests")
"""Tables left out of the counts a check or repair prints (leases expire; batch requests follow their jobs)."""
assert set(_TABLES) == {name for tables in MIGRATION_TABLES for name in tables}


@dataclass
class TableReport:
    """What was found (or kept) in one table."""

    rows: int = 0
    bad_rows: int = 0
    unreadable: int = 0
    """Rows SQLite could not read (damaged pages)."""
    missing: bool = False


@dataclass
class StoreReport:
    """The result of a check or a repair."""

    path: Path
    integrity: list[str] = field(default_factory=list)
    """SQLite's integrity_check lines (``["ok"]`` when sound)."""
    tables: dict[str, TableReport] = field(default_factory=dict)
    backup: Path | None = None

    @property
    def ok(self) -> bool:
        """Whether the store is sound."""
        return self.integrity == ["ok"] and all(
            not t.missing and not t.bad_rows and not t.unreadable for t in self.tables.values()
        )

    def problems(self) -> list[str]:
        """One phrase per problem found."""
        out = [line for line in self.integrity if line != "ok"][:5]
        for name, table in self.tables.items():
            if table.missing:
                out.append(f"table {name} missing")
            if table.bad_rows:
                out.append(f"{table.bad_rows} row(s) of {name} are not valid records")
            if table.unreadable:
                out.append(f"{table.unreadable} row(s) of {name} cannot be read")
        return out


def _connect(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise RunError(f"no store at {path}: set OVERREFUSAL_HOME to the folder holding store.sqlite3")
    return sqlite3.connect(path, isolation_level=None, timeout=30)


def _tables(db: sqlite3.Connection) -> set[str] | None:
    try:
        return {str(r[0]) for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError:
        return None


def _rows(
    db: sqlite3.Connection, table: str, columns: tuple[str, ...], report: TableReport
) -> Iterator[tuple[object, ...]]:
    """Every readable row of ``table`` in rowid order, reading row by row around damaged pages."""
    cols = ", ".join(columns)
    try:
        last = db.execute(f"SELECT MAX(rowid) FROM {table}").fetchone()[0]  # noqa: S608 - fixed table names
    except sqlite3.DatabaseError:
        last = None
    if last is None:
        try:  # MAX failed or the table is empty: read what a plain scan gives
            yield from db.execute(f"SELECT {cols} FROM {table}")  # noqa: S608
        except sqlite3.DatabaseError:
            report.unreadable += 1
        return
    start = 0
    while start < int(last):
        end = start + BATCH
        try:
            batch = db.execute(
                f"SELECT {cols} FROM {table} WHERE rowid > ? AND rowid <= ? ORDER BY rowid",  # noqa: S608
                (start, end),
            ).fetchall()
        except sqlite3.DatabaseError:
            batch = []
            for rowid in range(start + 1, end + 1):
                try:
                    batch.extend(db.execute(f"SELECT {cols} FROM {table} WHERE rowid = ?", (rowid,)).fetchall())  # noqa: S608
                except sqlite3.DatabaseError:
                    report.unreadable += 1
        yield from batch
        start = end


def _body(row: tuple[object, ...], columns: tuple[str, ...]) -> object:
    """The column a table's check reads: its ``body``, or the whole row for tables without one."""
    return row[columns.index("body")] if "body" in columns else row


def check(path: Path) -> StoreReport:
    """Check the store at ``path``: integrity, tables, and that every stored record is valid."""
    report = StoreReport(path=path)
    db = _connect(path)
    try:
        try:
            report.integrity = [str(r[0]) for r in db.execute("PRAGMA integrity_check(20)").fetchall()]
        except sqlite3.DatabaseError as exc:
            report.integrity = [str(exc)]
        present = _tables(db) or set()
        for name, (columns, valid) in _TABLES.items():
            table = report.tables[name] = TableReport()
            if name not in present:
                table.missing = True
                continue
            for row in _rows(db, name, columns, table):
                table.rows += 1
                if valid is not None and not valid(_body(row, columns)):
                    table.bad_rows += 1
    finally:
        db.close()
    return report


def repair(path: Path) -> StoreReport:
    """Rebuild the store at ``path`` from its readable, valid rows; the old file is kept as a copy.

    Stop every run that uses the store first.
    """
    report = StoreReport(path=path, integrity=["ok"])
    source = _connect(path)
    report.backup = backup_copy(path, "before-repair")
    if report.backup is None:
        source.close()
        raise RunError(f"cannot copy {path} before repairing it: free some disk space and try again")
    fresh = path.with_name(f"{path.name}.repairing-{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        fresh.unlink()
    try:
        present = _tables(source) or set()
        with Store(fresh, check=False) as target, target.transaction() as db:
            for name, (columns, valid) in _TABLES.items():
                table = report.tables[name] = TableReport()
                if name not in present:
                    table.missing = True
                    continue
                if valid is None:
                    continue
                marks = ", ".join("?" * len(columns))
                for row in _rows(source, name, columns, table):
                    if not valid(_body(row, columns)):
                        table.bad_rows += 1
                        continue
                    db.execute(f"INSERT OR REPLACE INTO {name} ({', '.join(columns)}) VALUES ({marks})", row)  # noqa: S608
                    table.rows += 1
        source.close()
        for suffix in ("-wal", "-shm"):  # the old WAL must never be replayed onto the new file
            with contextlib.suppress(FileNotFoundError):
                path.with_name(path.name + suffix).unlink()
        os.replace(fresh, path)
    except BaseException:
        source.close()
        for leftover in (fresh, fresh.with_name(fresh.name + "-wal"), fresh.with_name(fresh.name + "-shm")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
        raise
    return report
