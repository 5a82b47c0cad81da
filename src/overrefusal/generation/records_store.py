"""Generation state in the store: records of each kind (seed, candidate, moderation, ...) per project.

A stage replaces all records of its kind for the project in one transaction, so a stage's output
is either the old one or the new one, never half of each. Records keep the order they were
written in (``seq``), which later stages rely on for stable, reproducible results.
"""

from __future__ import annotations

import json
import time
from typing import Any

from overrefusal.store import Store


class GenerationStore:
    """Per-project generation records and stage reports in a :class:`Store`."""

    def __init__(self, store: Store, project: str) -> None:
        """Scope the records to ``project`` (several benchmarks can share one store)."""
        self.store = store
        self.project = project

    def replace(self, kind: str, records: list[dict[str, Any]]) -> None:
        """Replace every ``kind`` record of the project with ``records`` (each needs an ``id``)."""
        now = time.time()
        rows = [
            (self.project, kind, str(r["id"]), seq, json.dumps(r, ensure_ascii=False, sort_keys=True), now)
            for seq, r in enumerate(records)
        ]
        with self.store.transaction() as db:
            db.execute("DELETE FROM gen_records WHERE project = ? AND kind = ?", (self.project, kind))
            db.executemany(
                "INSERT INTO gen_records(project, kind, id, seq, body, created) VALUES (?, ?, ?, ?, ?, ?)", rows
            )

    def load(self, kind: str) -> list[dict[str, Any]]:
        """All ``kind`` records of the project, in the order they were written."""
        with self.store.transaction() as db:
            rows = db.execute(
                "SELECT body FROM gen_records WHERE project = ? AND kind = ? ORDER BY seq", (self.project, kind)
            ).fetchall()
        return [json.loads(body) for (body,) in rows]

    def put_stage(self, stage: str, report: dict[str, Any]) -> None:
        """Record the report of a finished stage (counts, models, prompt versions, tokens)."""
        body = json.dumps(report, ensure_ascii=False, sort_keys=True)
        with self.store.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO gen_stages(project, stage, body, created) VALUES (?, ?, ?, ?)",
                (self.project, stage, body, time.time()),
            )

    def stage(self, stage: str) -> dict[str, Any] | None:
        """The report of ``stage``, or None if it has not finished."""
        with self.store.transaction() as db:
            row = db.execute(
                "SELECT body FROM gen_stages WHERE project = ? AND stage = ?", (self.project, stage)
            ).fetchone()
        return None if row is None else dict(json.loads(row[0]))
