"""``run --ray``: the judge over large response sets on a Ray cluster.

The driver hands Ray Data the same chunks of answers it would judge itself; a pool of actors, each
holding one copy of the judge (built from its registered name and arguments), judges a chunk per
call, and each chunk's verdicts stream back to be committed. Judges that ask a model (``llm``,
``ensemble``) keep their replies in the driver's store and stay in the driver.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from typing import Any

from overrefusal.cluster.session import apply_env, cluster_cpus, connect, forwarded_env, stream_rows
from overrefusal.errors import RunError
from overrefusal.judges import Judge, judges
from overrefusal.judges.base import JudgeItem
from overrefusal.records import Verdict

RAY_JUDGES = ("classifier", "keywords")
"""Judges that need nothing but their weights: they can run anywhere."""
MIN_ITEMS = 1000
"""Below this many answers to judge, the driver judges them itself (a Ray job costs seconds to start)."""


class JudgeWorker:
    """A Ray Data actor holding one copy of the judge; judges one chunk per row."""

    def __init__(self, judge: str, args: dict[str, Any], env: dict[str, str]) -> None:
        """Build the judge in the worker."""
        apply_env(env)
        self.judge = judges.create(judge, **args)
        self.loop = asyncio.new_event_loop()

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        """Judge each chunk in ``batch`` (columns ``chunk``, ``items``); return its verdicts as JSON."""
        out: list[str] = []
        for raw in batch["items"]:
            items = [JudgeItem.model_validate(x) for x in json.loads(str(raw))]
            verdicts = self.loop.run_until_complete(self.judge.judge(items))
            out.append(json.dumps([v.model_dump(mode="json") for v in verdicts]))
        return {"chunk": list(batch["chunk"]), "verdicts": out, "judge_key": [self.judge.key] * len(out)}


class RayJudge:
    """Judges chunks on a Ray cluster (a :class:`~overrefusal.verdicts.BulkJudge`).

    Args:
        address: the cluster (``local``: this machine).
        args: the judge's arguments, to build it in each worker (by the name of the run's judge).
        min_items: fewer answers than this are judged in the driver.
        cpus: CPUs per judge copy (one actor per ``cpus`` CPUs of the cluster).

    Judges other than :data:`RAY_JUDGES` judge in the driver.
    """

    def __init__(self, address: str, args: dict[str, Any], min_items: int = MIN_ITEMS, cpus: float = 1.0) -> None:
        """Nothing starts until a large response set is judged."""
        self.address = address
        self.args = dict(args)
        self.min_items = min_items
        self.cpus = cpus
        self.chunks_judged = 0
        """Chunks judged on the cluster so far."""

    async def judge(
        self,
        judge: Judge,
        chunks: Sequence[Sequence[JudgeItem]],
        deliver: Callable[[int, list[Verdict]], None],
    ) -> None:
        """Judge every chunk on the cluster; deliver each chunk's verdicts as they stream back.

        Raises:
            RunError: a worker's judge is not configured like the driver's (other weights or versions
                on the cluster's nodes): its verdicts would not be this judge's.
        """
        if judge.name not in RAY_JUDGES:  # it asks a model through the driver's store: it stays here
            for index, chunk in enumerate(chunks):
                deliver(index, await judge.judge(chunk))
            return
        ray = connect(self.address)
        rows = [
            {"chunk": i, "items": json.dumps([item.model_dump(mode="json") for item in c])}
            for i, c in enumerate(chunks)
        ]
        actors = max(1, int(cluster_cpus(ray) // self.cpus))
        dataset = ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
            JudgeWorker,
            fn_constructor_kwargs={"judge": judge.name, "args": self.args, "env": forwarded_env()},
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=min(actors, len(rows))),
            num_cpus=self.cpus,
        )
        async for row in stream_rows(dataset.iter_rows()):
            if row["judge_key"] != judge.key:
                raise RunError(
                    f"the {judge.name} judge on the Ray workers is not the driver's ({row['judge_key']} vs "
                    f"{judge.key}): install the same overrefusal version and judge files on every node"
                )
            deliver(int(row["chunk"]), [Verdict.model_validate(v) for v in json.loads(str(row["verdicts"]))])
            self.chunks_judged += 1
