"""``run --batch``: answer the missing queries through a provider's batch API.

The queries the store lacks are written to request files of at most ``max_requests`` requests
(and the provider's byte limit), each recorded in the store as a job *before* it is submitted and
with the provider's batch id right after. The jobs are polled (a progress bar counts the requests
the provider has finished), and a finished job's results are committed like any answer (errors
as errors). A run interrupted at any point resumes its jobs on the next run: a request that is
in a job not yet collected is never submitted again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import click

from overrefusal.backends.http import HttpBackend
from overrefusal.batches import jobs
from overrefusal.batches.api import BatchApi, Poll
from overrefusal.batches.jobs import BatchJob, BatchRequest
from overrefusal.cached_model import PendingQueries, sample_query
from overrefusal.errors import BadInputError, RunStopped
from overrefusal.progress import Bar
from overrefusal.records import Response
from overrefusal.store import Store

Entry = tuple[BatchRequest, dict[str, Any]]
"""A request and its line in the batch file."""

UNFINISHED = {"expired": "batch_expired", "cancelled": "batch_cancelled", "failed": "batch_failed"}
"""Final statuses of a batch that did not answer everything, and the error kind of its unanswered requests."""


def batch_api(backend: HttpBackend) -> BatchApi:
    """The batch API of ``backend`` (``openai`` or ``anthropic``).

    Raises:
        BadInputError: the backend has no batch API.
    """
    if backend.name == "openai":
        from overrefusal.batches.openai_batch import OpenAIBatches

        return OpenAIBatches(backend)
    if backend.name == "anthropic":
        from overrefusal.batches.anthropic_batch import AnthropicBatches

        return AnthropicBatches(backend)
    raise BadInputError(f"--batch works with the openai and anthropic backends, not {backend.name}: drop --batch")


def _say(line: str) -> None:
    click.echo(line, err=True)


class BatchSender:
    """Answers queries through a batch API (a :class:`~overrefusal.cached_model.BulkSender`).

    Args:
        api: the provider's batch endpoints.
        store: where jobs and answers are kept.
        poll_s: seconds between status requests.
        max_requests: requests per batch (at most the provider's limit).
        wait: poll until every job is finished; False: submit, look once, and stop (run again to collect).
        say: where the lines about submitted and unfinished batches go (stderr).
    """

    def __init__(
        self,
        api: BatchApi,
        store: Store,
        poll_s: float = 30.0,
        max_requests: int | None = None,
        wait: bool = True,
        say: Callable[[str], None] = _say,
    ) -> None:
        """Configure the sender; nothing is submitted until :meth:`send`."""
        if poll_s <= 0:
            raise BadInputError("--batch-poll must be positive (seconds between status requests)")
        if max_requests is not None and not 1 <= max_requests <= api.max_requests:
            raise BadInputError(f"--batch-size must be 1 to {api.max_requests:,} for {api.name} batches")
        self.api = api
        self.store = store
        self.poll_s = poll_s
        self.max_requests = max_requests or api.max_requests
        self.wait = wait
        self.say = say
        self.reports: list[str] = []
        """One line per job that ended without answering everything (expired, cancelled, failed)."""

    def _chunks(
        self, lines: list[tuple[BatchRequest, dict[str, Any]]]
    ) -> list[list[tuple[BatchRequest, dict[str, Any]]]]:
        """Split into batches within the provider's request and byte limits."""
        out: list[list[Entry]] = []
        current: list[Entry] = []
        size = 0
        for request, line in lines:
            grows = self.api.size(line)
            if current and (len(current) >= self.max_requests or size + grows > self.api.max_bytes):
                out.append(current)
                current, size = [], 0
            current.append((request, line))
            size += grows
        if current:
            out.append(current)
        return out

    async def send(
        self,
        pending: PendingQueries,
        take: Callable[[Sequence[str]], list[str]],
        deliver: Callable[[Sequence[Response]], None],
        bar: Bar,
    ) -> None:
        """Resume this model's open jobs holding pending keys, submit the rest, poll and collect them all."""
        api, store = self.api, self.store
        open_jobs = [
            j
            for j in jobs.open_jobs(store, list(pending), api.name)
            if j.endpoint == api.endpoint and j.model == api.backend.model
        ]
        covered = {r.key for j in open_jobs for r in jobs.requests_of(store, j.id).values()}
        fresh = [k for k in pending if k not in covered]
        held = take(fresh) if fresh else []
        lines: list[Entry] = []
        for key in held:
            query, sample = pending[key]
            request = BatchRequest(custom_id=jobs.custom_id(key), key=key, prompt_id=query.prompt_id, sample=sample)
            lines.append((request, api.line(request, sample_query(query, sample))))
        known = {j.remote_id for j in jobs.all_jobs(store) if j.remote_id}
        for job in open_jobs:
            if job.remote_id is None:  # killed between writing the job and recording the provider's id
                job.remote_id = await api.find(job, known)
                if job.remote_id is None:
                    requests = jobs.requests_of(store, job.id)
                    entries = [
                        api.line(r, sample_query(pending[r.key][0], r.sample))
                        for r in requests.values()
                        if r.key in pending
                    ]
                    await self._submit(job, entries)
                else:
                    job.status = "resumed"
                    jobs.save(store, job)
                    self.say(f"found batch {job.remote_id} ({job.total} requests) submitted by an interrupted run")
            else:
                self.say(f"resuming batch {job.remote_id} ({job.total} requests, {job.status})")
        for chunk in self._chunks(lines):
            job = BatchJob(provider=api.name, endpoint=api.endpoint, model=api.backend.model, total=len(chunk))
            jobs.save(store, job, [r for r, _ in chunk])
            await self._submit(job, [line for _, line in chunk])
            open_jobs.append(job)
        await self._follow(open_jobs, pending, deliver, bar)

    async def _submit(self, job: BatchJob, entries: Sequence[dict[str, Any]]) -> None:
        job.remote_id = await self.api.submit(job, entries)
        job.status = "submitted"
        jobs.save(self.store, job)
        self.say(f"submitted batch {job.remote_id}: {job.total} requests to {self.api.name} ({job.endpoint})")

    async def _follow(
        self,
        open_jobs: list[BatchJob],
        pending: PendingQueries,
        deliver: Callable[[Sequence[Response]], None],
        bar: Bar,
    ) -> None:
        """Poll until every job is collected (or, without ``wait``, once); advance ``bar`` by requests settled."""
        shown: dict[str, int] = {}
        todo = list(open_jobs)
        while todo:
            for job in list(todo):
                poll = await self.api.poll(job)
                job.status, job.counts = poll.status, poll.counts
                job.files.update(poll.files)
                settled = min(poll.settled, job.total)
                bar.advance(count=settled - shown.get(job.id, 0))
                shown[job.id] = settled
                if poll.finished:
                    await self._collect(job, poll, pending, deliver, bar, shown[job.id])
                    todo.remove(job)
                else:
                    jobs.save(self.store, job)
            if not todo:
                return
            if not self.wait:
                waiting = ", ".join(f"{j.remote_id} ({j.status}, {shown.get(j.id, 0)}/{j.total})" for j in todo)
                raise RunStopped(
                    f"the batches are still running: {waiting}; run the same command again later to collect "
                    "their answers (nothing is submitted twice)"
                )
            await asyncio.sleep(self.poll_s)

    async def _collect(
        self,
        job: BatchJob,
        poll: Poll,
        pending: PendingQueries,
        deliver: Callable[[Sequence[Response]], None],
        bar: Bar,
        shown: int,
    ) -> None:
        """Commit a finished job's answers; requests it left unanswered are stored as errors of its status."""
        requests = jobs.requests_of(self.store, job.id)
        found = await self.api.results(job, requests)
        kind = UNFINISHED.get(poll.status, "batch_missing")
        why = f"the batch {job.remote_id} ended {poll.status} without answering this request"
        if poll.problem:
            why += f" ({poll.problem})"
        answers = [found.get(cid) or self.api.error(r, kind, why) for cid, r in requests.items()]
        deliver([a for a in answers if a.key in pending])
        bar.advance(count=len(requests) - shown)
        answered = sum(1 for a in answers if a.ok)
        failed = len(answers) - answered
        job.outcome = f"{poll.status}: {answered} answered, {failed} without an answer"
        job.done = True
        jobs.save(self.store, job)
        if failed:
            reasons: dict[str, int] = {}
            for a in answers:
                if a.error is not None:
                    reasons[a.error.kind] = reasons.get(a.error.kind, 0) + 1
            detail = ", ".join(f"{n} {k}" for k, n in sorted(reasons.items()))
            line = (
                f"batch {job.remote_id} {poll.status}: {answered} of {job.total} requests answered, "
                f"{failed} not ({detail}){f'; {poll.problem}' if poll.problem else ''}: "
                "run the same command again to submit them in a new batch"
            )
            self.reports.append(line)
            self.say(line)
