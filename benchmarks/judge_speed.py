"""Classifier-judge throughput (responses/s) on 2 cores vs the raw Embedder on the same texts, one process.

The judge embeds each response's opening (20 tokens) and computes its hand-made features; the
baseline is one plain ``Embedder.encode`` of the same responses with the embedder's defaults
(256 tokens). Every response is distinct (duplicates are dropped), so the judge's de-duplication
of identical openings cannot inflate the figure. Rounds alternate so neither side gets the warm
cache. Besides wall-clock rates it prints responses per CPU-second of this process
(``time.process_time``): on a busy shared machine, twice that is the rate 2 idle cores give.
Last line: ``responses_per_s=<judge> ratio=<judge/raw_embed>``.

    python benchmarks/judge_speed.py [--file LABELLED.csv ...] [--n 1000] [--rounds 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path

from overrefusal.embeddings import Embedder
from overrefusal.judges import classifier
from overrefusal.judges.base import JudgeItem
from overrefusal.judges.classifier import EMBED_TOKENS, JUDGE_BATCH, ClassifierJudge
from overrefusal.judges.gold import load_gold


def timed(fn: Callable[[], object], n: int) -> tuple[float, float]:
    """(items per wall second, items per CPU second of this process)."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return n / (time.perf_counter() - wall), n / max(time.process_time() - cpu, 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--file", type=Path, action="append", help="labelled responses (default: the built-in data)")
    parser.add_argument("--n", type=int, default=1000, help="at most this many distinct responses")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    paths = args.file or [Path(str(files("overrefusal.judges").joinpath("data/authored.csv")))]
    seen: dict[str, JudgeItem] = {}
    for path in paths:
        for item in load_gold(path).items:
            if item.response.text.strip():
                seen.setdefault(item.response.text, item)
    items = list(seen.values())[: args.n]
    texts = [i.response.text for i in items]
    raw = Embedder(threads=args.threads)
    classifier._embedder = Embedder(max_length=EMBED_TOKENS, batch_size=JUDGE_BATCH, threads=args.threads)
    judge = ClassifierJudge()
    raw.encode(texts[:32])
    asyncio.run(judge.judge(items[:32]))
    raw_rates: list[tuple[float, float]] = []
    judge_rates: list[tuple[float, float]] = []
    for _ in range(args.rounds):
        raw_rates.append(timed(lambda: raw.encode(texts), len(texts)))
        judge_rates.append(timed(lambda: asyncio.run(judge.judge(items)), len(items)))
    raw_rate = statistics.median(r[0] for r in raw_rates)
    judge_rate = statistics.median(r[0] for r in judge_rates)
    judge_cpu = statistics.median(r[1] for r in judge_rates)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"responses: {len(items)} distinct from {', '.join(p.name for p in paths)}")
    print(f"threads={args.threads}, rounds={args.rounds}, load average (1 min) at the end {load:.2f}")
    print(f"raw Embedder (256 tokens): {raw_rate:.0f} texts/s; classifier judge: {judge_rate:.0f} responses/s")
    print(
        f"classifier judge per CPU-second: {judge_cpu:.0f} responses "
        f"(x{args.threads} cores = {judge_cpu * args.threads:.0f}/s)"
    )
    print(f"responses_per_s={judge_rate:.0f} ratio={judge_rate / raw_rate:.2f}")


if __name__ == "__main__":
    main()
