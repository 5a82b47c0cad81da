"""``run --ray``: answering with an in-process model on every node of a Ray cluster.

For the embedded llama.cpp model, Ray Data spreads the queries over a pool of actors, each holding
one copy of the model and using ``threads`` CPUs; for vLLM, ``ray.data.llm`` runs the engines
(:mod:`overrefusal.cluster.vllm_answers`). Answers stream back to the driver, which commits each
one to the store as it arrives, so a job killed half-way resumes with only the missing queries.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from overrefusal.backends import backends
from overrefusal.cached_model import PendingQueries, sample_query
from overrefusal.cluster.session import (
    apply_env,
    cluster_cpus,
    connect,
    forwarded_env,
    smallest_node_cpus,
    stream_rows,
)
from overrefusal.errors import BadInputError
from overrefusal.progress import Bar
from overrefusal.records import Query, Response, ResponseError

IN_PROCESS = ("embedded", "vllm", "fake")
"""Backends that run the model in the process that answers (the ones worth spreading over a cluster)."""
ROWS_PER_CALL = 1
"""Queries per actor call: one, so each answer streams back (and is committed) as soon as it is made."""
MAX_BLOCKS = 2000
"""Dataset blocks at most (one query per block up to this many: Ray Data hands results back per block)."""


class Answerer:
    """A Ray Data actor holding one copy of the model; answers a batch of queries per call."""

    def __init__(self, backend: str, args: dict[str, Any], env: dict[str, str]) -> None:
        """Build the backend in the worker (its model loads on the first query)."""
        apply_env(env)
        self.backend = backends.create(backend, **args)
        self.loop = asyncio.new_event_loop()

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[str]]:
        """Answer the rows of ``batch`` (columns ``key``, ``query``, ``sample``); return their responses as JSON."""
        out: list[str] = []
        for key, raw, sample in zip(batch["key"], batch["query"], batch["sample"], strict=True):
            query = sample_query(Query.model_validate_json(str(raw)), int(sample))
            response = self.loop.run_until_complete(self.backend.generate(query, str(key)))
            out.append(response.model_dump_json())
        return {"key": [str(k) for k in batch["key"]], "response": out}


class RaySender:
    """Answers queries on a Ray cluster (a :class:`~overrefusal.cached_model.BulkSender`).

    Args:
        address: the cluster (``local``: this machine).
        backend: the registered name of an in-process backend.
        args: its arguments, to build it in each worker.

    Each model copy uses ``threads`` CPUs (``-B threads=N``; default: the CPUs of the cluster's
    smallest node), and the cluster runs one copy per ``threads`` CPUs.
    """

    def __init__(self, address: str, backend: str, args: dict[str, Any], model: str = "") -> None:
        """Check the backend can run on a cluster; nothing starts until :meth:`send`."""
        if backend not in IN_PROCESS:
            raise BadInputError(
                f"--ray runs in-process models ({', '.join(IN_PROCESS)}, or vllm through ray.data.llm), not the "
                f"{backend} backend, whose server already answers in parallel: use --concurrency or several --base-url"
            )
        self.address = address
        self.backend = backend
        self.args = dict(args)
        self.model_name = model or str(args.get("model") or backend)

    async def send(
        self,
        pending: PendingQueries,
        take: Callable[[Sequence[str]], list[str]],
        deliver: Callable[[Sequence[Response]], None],
        bar: Bar,
    ) -> None:
        """Lease the pending keys, answer them on the cluster, deliver each answer as it streams back."""
        held = take(list(pending))
        if not held:
            return
        ray = connect(self.address)
        rows = [{"key": k, "query": pending[k][0].model_dump_json(), "sample": pending[k][1]} for k in held]
        if self.backend == "vllm":
            from overrefusal.cluster.vllm_answers import vllm_dataset

            dataset = vllm_dataset(ray, rows, self.args)
        else:
            dataset = self._actor_dataset(ray, rows)
        async for row in stream_rows(dataset.iter_rows()):
            key = str(row["key"])
            if row.get("__inference_error__"):
                query = pending[key][0]
                error = ResponseError(kind="backend", message=str(row["__inference_error__"])[:300])
                response = Response(key=key, prompt_id=query.prompt_id, model=self.model_name, error=error)
            else:
                response = Response.model_validate_json(str(row["response"]))
            deliver([response])
            bar.advance(error=not response.ok)

    def _actor_dataset(self, ray: Any, rows: list[dict[str, Any]]) -> Any:
        """The rows answered by a pool of actors, each with one copy of the model."""
        args = dict(self.args)
        if self.backend == "embedded" and not args.get("threads"):
            args["threads"] = smallest_node_cpus(ray)
        threads = int(args.get("threads") or 1)
        actors = max(1, cluster_cpus(ray) // threads)
        blocks = max(1, min(len(rows), MAX_BLOCKS))
        return ray.data.from_items(rows, override_num_blocks=blocks).map_batches(
            Answerer,
            fn_constructor_kwargs={"backend": self.backend, "args": args, "env": forwarded_env()},
            batch_size=ROWS_PER_CALL,
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_cpus=threads,
        )
