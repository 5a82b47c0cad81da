"""Batch jobs in the store: which provider batch holds which requests, and what became of it.

A job is written (with its requests) *before* it is submitted, and its provider id right after,
so a process killed at any point finds on its next run either a job to poll, or one that may
have reached the provider without its id being recorded (found again by the provider client
before anything is submitted anew). A job is ``done`` once its results are committed.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from overrefusal.store import Store


class BatchRequest(BaseModel):
    """One request of a job: its id in the batch file and where its answer goes."""

    model_config = ConfigDict(frozen=True)

    custom_id: str
    key: str
    prompt_id: str
    sample: int = 0


class BatchJob(BaseModel):
    """A provider batch as this project knows it."""

    id: str = Field(default_factory=lambda: "job-" + secrets.token_hex(8))
    """Local id (also sent to the provider as metadata where it takes any)."""
    provider: str
    """``openai``, ``anthropic`` or ``file`` (a batch file exported for ``vllm run-batch``)."""
    endpoint: str
    """The base URL it was submitted to (or the exported file)."""
    model: str
    remote_id: str | None = None
    """The provider's batch id; None until the submission is confirmed."""
    status: str = "submitting"
    """The provider's status when last seen."""
    total: int = 0
    counts: dict[str, int] = Field(default_factory=dict)
    """The provider's request counts when last seen."""
    files: dict[str, str] = Field(default_factory=dict)
    """Provider file ids (``input``, ``output``, ``error``) or the results URL."""
    submitted: float = Field(default_factory=time.time)
    outcome: str = ""
    """What was collected, once done (e.g. ``expired: 40 answered, 60 expired``)."""
    done: bool = False


def save(store: Store, job: BatchJob, requests: Sequence[BatchRequest] = ()) -> None:
    """Write ``job`` (and, for a new job, its requests) in one transaction."""
    with store.transaction() as db:
        db.execute(
            "INSERT INTO batch_jobs(id, done, body, created) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET done = excluded.done, body = excluded.body",
            (job.id, int(job.done), job.model_dump_json(), job.submitted),
        )
        db.executemany(
            "INSERT OR REPLACE INTO batch_requests(job, custom_id, key, prompt_id, sample) VALUES (?, ?, ?, ?, ?)",
            [(job.id, r.custom_id, r.key, r.prompt_id, r.sample) for r in requests],
        )


def load(store: Store, job_id: str) -> BatchJob | None:
    """The job with local id ``job_id``."""
    with store.transaction() as db:
        row = db.execute("SELECT body FROM batch_jobs WHERE id = ?", (job_id,)).fetchone()
    return BatchJob.model_validate_json(row[0]) if row else None


def open_jobs(store: Store, keys: Sequence[str], provider: str | None = None) -> list[BatchJob]:
    """Jobs not yet collected that hold any of ``keys`` (of ``provider`` when given), oldest first."""
    ids: set[str] = set()
    with store.transaction() as db:
        for start in range(0, len(keys), 500):
            chunk = list(keys[start : start + 500])
            marks = ",".join("?" * len(chunk))
            sql = (
                "SELECT DISTINCT r.job FROM batch_requests r JOIN batch_jobs j ON j.id = r.job "  # noqa: S608
                f"WHERE j.done = 0 AND r.key IN ({marks})"
            )
            ids.update(str(row[0]) for row in db.execute(sql, chunk))
        bodies = [db.execute("SELECT body FROM batch_jobs WHERE id = ?", (i,)).fetchone()[0] for i in ids]
    jobs = [BatchJob.model_validate_json(b) for b in bodies]
    return sorted((j for j in jobs if provider is None or j.provider == provider), key=lambda j: j.submitted)


def all_jobs(store: Store) -> list[BatchJob]:
    """Every job, oldest first."""
    with store.transaction() as db:
        rows = db.execute("SELECT body FROM batch_jobs ORDER BY created").fetchall()
    return [BatchJob.model_validate_json(r[0]) for r in rows]


def requests_of(store: Store, job_id: str) -> dict[str, BatchRequest]:
    """The requests of a job, by custom id."""
    with store.transaction() as db:
        rows = db.execute(
            "SELECT custom_id, key, prompt_id, sample FROM batch_requests WHERE job = ?", (job_id,)
        ).fetchall()
    return {str(c): BatchRequest(custom_id=str(c), key=str(k), prompt_id=str(p), sample=int(s)) for c, k, p, s in rows}


def custom_id(key: str) -> str:
    """The id of a request in a batch file: the cache key in the alphabet every provider accepts (64 chars)."""
    return key.replace(":", "-")[:64]
