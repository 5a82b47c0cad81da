"""Tokens/s through overrefusal's embedded backend vs raw xllamacpp, same prompts, one process.

The harness path includes query building, cache-key hashing, the asyncio/thread hop and
the SQLite commit of every response. Rounds alternate (raw, harness, raw, harness, ...)
so warm-up and prompt caching favour neither side; the last line is ``ratio=<harness/raw>``.

    python benchmarks/embedded_overhead.py [--prompts 12] [--rounds 3] [--max-tokens 48]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from overrefusal.backends.embedded import EmbeddedBackend
from overrefusal.benchmarks.loaders import starter
from overrefusal.records import GenerateParams, Query
from overrefusal.runner import collect_responses
from overrefusal.store import Store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prompts", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=48)
    args = parser.parse_args()

    prompts = starter().limit(args.prompts).prompts
    backend = EmbeddedBackend()
    backend.complete({"messages": [{"role": "user", "content": "warm up"}], "max_tokens": 4})

    raw_rates: list[float] = []
    harness_rates: list[float] = []
    for round_number in range(args.rounds):
        # a different seed per round defeats the response cache without changing the work
        params = GenerateParams(max_tokens=args.max_tokens, seed=round_number + 1)
        queries = [Query.for_prompt(p, params) for p in prompts]

        start = time.perf_counter()
        tokens = 0
        for query in queries:
            result = backend.complete(backend.request_body(query))
            tokens += int(result["usage"]["completion_tokens"])
        raw_rates.append(tokens / (time.perf_counter() - start))

        with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "store.sqlite3") as store:
            start = time.perf_counter()
            responses = asyncio.run(collect_responses(backend, queries, store, progress=False))
            elapsed = time.perf_counter() - start
        harness_tokens = sum(r.usage.completion_tokens for r in responses)
        harness_rates.append(harness_tokens / elapsed)
        print(
            f"round {round_number + 1}: raw {raw_rates[-1]:.1f} tok/s ({tokens} tokens), "
            f"harness {harness_rates[-1]:.1f} tok/s ({harness_tokens} tokens)",
            flush=True,
        )

    raw = statistics.median(raw_rates)
    harness = statistics.median(harness_rates)
    print(
        f"median: raw {raw:.1f} tok/s, harness {harness:.1f} tok/s over {len(prompts)} prompts x {args.rounds} rounds"
    )
    print(f"ratio={harness / raw:.3f}")


if __name__ == "__main__":
    main()
