"""Tokens/s through overrefusal's embedded backend vs raw xllamacpp, same prompts, one process.

The harness path includes query building, cache-key hashing, the asyncio/thread hop and
the SQLite commit of every response. Calls are interleaved per prompt (raw, harness / harness, raw, ...)
so warm-up, prompt caching and machine load favour neither side; the last line is ``ratio=<harness/raw>``.
Every harness answer must be freshly generated (a cache hit would inflate its side): the script
exits 1 otherwise.

    python benchmarks/embedded_overhead.py [--prompts 12] [--rounds 3] [--max-tokens 48]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from overrefusal.backends.embedded import EmbeddedBackend
from overrefusal.benchmarks.loaders import starter
from overrefusal.cached_model import CachedModel
from overrefusal.records import GenerateParams, Query
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

    raw_time = harness_time = 0.0
    raw_tokens = harness_tokens = fresh = 0
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "store.sqlite3") as store:
        for round_number in range(args.rounds):
            # a different seed per round defeats the response cache without changing the work
            params = GenerateParams(max_tokens=args.max_tokens, seed=round_number + 1)
            for index, prompt in enumerate(prompts):
                query = Query.for_prompt(prompt, params)
                # interleave per prompt, alternating which goes first, so load from other
                # processes on the machine hits both sides alike
                for side in ("raw", "harness") if index % 2 == 0 else ("harness", "raw"):
                    start = time.perf_counter()
                    if side == "raw":
                        result = backend.complete(backend.request_body(query))
                        raw_time += time.perf_counter() - start
                        raw_tokens += int(result["usage"]["completion_tokens"])
                    else:
                        (response,) = asyncio.run(CachedModel(backend, store, progress=False).answer([query]))
                        harness_time += time.perf_counter() - start
                        if response.cached or not response.ok:  # a cache hit would inflate the harness side
                            sys.exit(f"error: the harness answer to {prompt.id} was not freshly generated")
                        fresh += 1
                        harness_tokens += response.usage.completion_tokens
            print(
                f"after round {round_number + 1}: raw {raw_tokens / raw_time:.1f} tok/s, "
                f"harness {harness_tokens / harness_time:.1f} tok/s",
                flush=True,
            )
    raw = raw_tokens / raw_time
    harness = harness_tokens / harness_time
    print(f"raw {raw:.1f} tok/s ({raw_tokens} tokens), harness {harness:.1f} tok/s ({harness_tokens} tokens)")
    if fresh != args.rounds * len(prompts) or not raw_tokens or not harness_tokens:
        sys.exit(f"error: {fresh} fresh harness answers of {args.rounds * len(prompts)}, or no tokens generated")
    print(f"ratio={harness / raw:.3f}")


if __name__ == "__main__":
    main()
