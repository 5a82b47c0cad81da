"""Classifier-judge throughput on a Ray cluster on this machine, against the same judge in one process.

Both sides judge the same distinct responses (the built-in labelled answers, made distinct with a
numbered suffix) through :func:`overrefusal.verdicts.judge_responses` into fresh stores, in the same
chunks; the Ray side hands every chunk to a pool of judge actors (one per CPU) through Ray Data and
commits the verdicts as they stream back. The script exits 1 if any verdict differs.

On one machine Ray cannot beat the single process (the single process already uses every core for
its ONNX threads); the point is that the same command scales out over a cluster's nodes. What it
costs is printed: starting the cluster, then the per-run overhead (actor start, model load per
actor, serialising the items and verdicts).

Last line: ``ratio=<Ray responses/s / single-process responses/s>``.

    python benchmarks/ray_judge.py [--n 20000] [--cpus N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

from overrefusal.cluster.judging import RayJudge
from overrefusal.judges import judges
from overrefusal.judges.gold import load_gold
from overrefusal.judges.training import BUILTIN_DATA
from overrefusal.records import Prompt, Response
from overrefusal.store import Store
from overrefusal.verdicts import judge_responses

ROOT = Path(__file__).resolve().parents[1]


def dataset(n: int) -> tuple[list[Prompt], list[Response]]:
    """``n`` distinct (prompt, response) pairs cycled from the built-in labelled answers."""
    base = []
    for name in BUILTIN_DATA:
        gold = load_gold(ROOT / "src/overrefusal/judges" / name)
        base.extend((i.prompt, i.response.text) for i in gold.items if i.response.text.strip())
    prompts, responses = [], []
    for k in range(n):
        prompt, text = base[k % len(base)]
        prompts.append(Prompt(id=f"p{k}", text=prompt, category="c", label="benign"))
        responses.append(Response(key=f"resp:{k:064x}", prompt_id=f"p{k}", model="m", text=f"{text} ({k})"))
    return prompts, responses


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    prompts, responses = dataset(args.n)
    judge = judges.create("classifier")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        with Store(Path(tmp) / "one.sqlite3") as store:
            single = asyncio.run(judge_responses(judge, prompts, responses, store, progress=False))
        single_s = time.perf_counter() - start

        start = time.perf_counter()
        ray.init(num_cpus=args.cpus, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
        cluster_s = time.perf_counter() - start
        bulk = RayJudge("local", {}, min_items=0)
        start = time.perf_counter()
        with Store(Path(tmp) / "ray.sqlite3") as store:
            on_ray = asyncio.run(judge_responses(judge, prompts, responses, store, progress=False, bulk=bulk))
        ray_s = time.perf_counter() - start
        ray.shutdown()
    same = single == on_ray
    print(f"responses: {args.n:,}; cluster: {args.cpus} CPUs, {args.cpus} judge actors of 1 CPU")
    print(f"single process: {single_s:.1f}s ({args.n / single_s:.0f} responses/s)")
    print(f"ray: {ray_s:.1f}s ({args.n / ray_s:.0f} responses/s), plus {cluster_s:.1f}s to start the cluster")
    print(f"overhead on this machine: {ray_s - single_s:+.1f}s per run; verdicts identical: {same}")
    print(f"ratio={single_s / ray_s:.2f}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
