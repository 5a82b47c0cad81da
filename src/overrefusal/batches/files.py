"""Batch files for offline inference: OpenAI-batch JSONL out (``vllm run-batch`` reads it), its output in.

``batch export`` writes the requests a run would send; ``batch import`` commits the output file.

Each exported request's custom id is recorded in the store with its cache key, so the import
maps every answer back to the key a run looks it up under: after the import the same run
command finds every answer in the store and sends nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from overrefusal.atomic import write_atomic
from overrefusal.backends.openai_compat import OpenAIBackend
from overrefusal.batches import jobs
from overrefusal.batches.jobs import BatchJob, BatchRequest
from overrefusal.batches.openai_batch import parse_result, request_line
from overrefusal.cached_model import CachedModel, sample_query
from overrefusal.errors import BadInputError
from overrefusal.records import Query, Response
from overrefusal.store import Store

FILE_PROVIDER = "file"


@dataclass(frozen=True)
class Exported:
    """What :func:`export_requests` wrote."""

    path: Path
    requests: int
    answered: int
    """Queries left out because the store has their answers."""
    job: str


@dataclass(frozen=True)
class Imported:
    """What :func:`import_results` committed."""

    answers: int
    errors: int
    unknown: int
    """Lines whose custom id no export holds (another store, or not ours)."""


def export_requests(
    model: CachedModel,
    queries: Sequence[Query],
    samples: int,
    path: Path,
) -> Exported:
    """Write the queries ``model``'s store lacks as an OpenAI-batch JSONL at ``path`` and record them.

    Raises:
        BadInputError: the backend is not ``openai`` (the format of the file and of the answers).
    """
    backend = model.backend
    if not isinstance(backend, OpenAIBackend):
        raise BadInputError("batch files are in the OpenAI format: use --backend openai (or a --base-url)")
    slots = [(query, sample) for query in queries for sample in range(samples)]
    keys = [model.key(query, sample) for query, sample in slots]
    stored = {} if model.policy.refresh else model.store.get_responses(keys)
    requests: dict[str, tuple[BatchRequest, Query]] = {}
    for key, (query, sample) in zip(keys, slots, strict=True):
        if key not in stored and key not in requests:
            request = BatchRequest(custom_id=jobs.custom_id(key), key=key, prompt_id=query.prompt_id, sample=sample)
            requests[key] = (request, sample_query(query, sample))
    lines = [json.dumps(request_line(r.custom_id, backend.request_body(q))) + "\n" for r, q in requests.values()]
    job = BatchJob(
        provider=FILE_PROVIDER,
        endpoint=str(path.resolve()),
        model=backend.model,
        remote_id=str(path.resolve()),
        status="exported",
        total=len(requests),
    )
    write_atomic(path, "".join(lines))
    jobs.save(model.store, job, [r for r, _ in requests.values()])
    return Exported(path=path, requests=len(requests), answered=len(set(stored)), job=job.id)


def import_results(store: Store, path: Path) -> Imported:
    """Commit the answers of an OpenAI-batch output file (``vllm run-batch -o``) to the store.

    Raises:
        BadInputError: the file cannot be read, is not JSONL, or holds no exported request.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputError(f"cannot read {path} ({exc}): give the output file of `vllm run-batch`") from None
    lines: list[dict[str, object]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except ValueError:
            raise BadInputError(f"{path} line {number} is not JSON: give the output file of `vllm run-batch`") from None
        if not isinstance(line, dict) or "custom_id" not in line:
            raise BadInputError(f"{path} line {number} has no custom_id: give the output file of `vllm run-batch`")
        lines.append(line)
    exported = [j for j in jobs.all_jobs(store) if j.provider == FILE_PROVIDER]
    owners: dict[str, tuple[BatchJob, BatchRequest]] = {}
    for job in exported:
        for cid, request in jobs.requests_of(store, job.id).items():
            owners[cid] = (job, request)
    answers: list[Response] = []
    unknown = 0
    for line in lines:
        found = owners.get(str(line["custom_id"]))
        if found is None:
            unknown += 1
            continue
        job, request = found
        answers.append(parse_result(line, request, job.model))
    if not answers:
        raise BadInputError(
            f"no line of {path} answers a request exported from this store ({unknown} unknown custom ids): "
            "import into the OVERREFUSAL_HOME that `overrefusal batch export` wrote to"
        )
    store.put_responses(answers)
    answered = {a.key for a in answers if a.ok}
    for job in exported:
        keys = {r.key for r in jobs.requests_of(store, job.id).values()}
        if not job.done and keys and not keys - answered - set(store.get_responses(list(keys - answered))):
            job.done, job.status, job.outcome = True, "imported", f"imported from {path}"
            jobs.save(store, job)
    return Imported(answers=len(answered), errors=len(answers) - len(answered), unknown=unknown)
