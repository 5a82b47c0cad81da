"""Classifier-judge throughput (responses/s) on 2 cores vs the raw Embedder on the same texts, one process.

The judge embeds each response's opening and its continuation (48 tokens each) and computes
its hand-made features; the baseline is one plain ``Embedder.encode`` of the same responses
with the embedder's defaults (256 tokens). Rounds alternate so neither side gets the warm
cache. Last line: ``responses_per_s=<judge> ratio=<judge/raw_embed>``.

    python benchmarks/judge_speed.py [--file LABELLED.csv] [--n 1000] [--rounds 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from importlib.resources import files
from pathlib import Path

from overrefusal.embeddings import Embedder
from overrefusal.judges import classifier
from overrefusal.judges.classifier import EMBED_TOKENS, ClassifierJudge
from overrefusal.judges.gold import load_gold


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--file", type=Path, default=None, help="labelled responses (default: the built-in data)")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    path = args.file or Path(str(files("overrefusal.judges").joinpath("data/authored.csv")))
    gold = load_gold(path)
    items = [gold.items[i % len(gold)] for i in range(args.n)]
    texts = [i.response.text for i in items]
    raw = Embedder(threads=args.threads)
    classifier._embedder = Embedder(max_length=EMBED_TOKENS, batch_size=128, threads=args.threads)
    judge = ClassifierJudge()
    raw.encode(texts[:32])
    asyncio.run(judge.judge(items[:32]))
    raw_rates: list[float] = []
    judge_rates: list[float] = []
    for _ in range(args.rounds):
        start = time.perf_counter()
        raw.encode(texts)
        raw_rates.append(len(texts) / (time.perf_counter() - start))
        start = time.perf_counter()
        asyncio.run(judge.judge(items))
        judge_rates.append(len(items) / (time.perf_counter() - start))
    raw_rate = statistics.median(raw_rates)
    judge_rate = statistics.median(judge_rates)
    print(f"texts: {len(texts)} from {path.name}, threads={args.threads}, rounds={args.rounds}")
    print(f"raw Embedder (256 tokens): {raw_rate:.0f} texts/s; classifier judge: {judge_rate:.0f} responses/s")
    print(f"responses_per_s={judge_rate:.0f} ratio={judge_rate / raw_rate:.2f}")


if __name__ == "__main__":
    main()
