"""HTTP throughput: overrefusal's openai backend (store writes included) vs a bare aiohttp loop.

A local OpenAI-compatible server (tests/http_servers.py, 20 ms latency) runs in a subprocess;
this process sends N requests at concurrency C three ways, one after the other:

* bare: an asyncio loop over one aiohttp session (semaphore, POST, parse JSON), nothing stored;
* overrefusal: ``CachedModel.answer`` with the ``openai`` backend: cache keys computed and looked up,
  requests sent, answers parsed into records, each committed to the SQLite store, progress bar
  drawn: what ``overrefusal run`` does between loading the benchmark and judging;
* inspect_ai's OpenAI-compatible provider, when inspect_ai (and openai) are installed.

CPU time is this process's (the harness's); the server's is not counted.
Each side builds its requests on the clock and gets the same best-of-``--rounds``; the script exits 1
unless every one of our answers was committed. Last line: ``ratio_vs_bare=<x> us_per_request=<y>``
plus `` ratio_vs_inspect=<z>`` when measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

import aiohttp

from overrefusal.backends.openai_compat import OpenAIBackend
from overrefusal.cached_model import CachedModel
from overrefusal.records import GenerateParams, Prompt, Query
from overrefusal.store import Store

ROOT = Path(__file__).resolve().parents[1]


def start_server(latency: float) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "http_servers.py"), "--latency", str(latency)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    return proc, f"http://127.0.0.1:{port}/v1"


def prompts(n: int, tag: str) -> list[str]:
    return [f"{tag} benchmark prompt number {i}: how do I kill a stuck process?" for i in range(n)]


async def bare(url: str, n: int, concurrency: int) -> None:
    semaphore = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def one(text: str) -> None:
            body = {"model": "m", "messages": [{"role": "user", "content": text}], "max_tokens": 16}
            async with semaphore, session.post(url + "/chat/completions", json=body) as answer:
                data = await answer.json()
                assert data["choices"][0]["message"]["content"]

        await asyncio.gather(*(one(t) for t in prompts(n, "bare")))


def queries(n: int) -> list[Query]:
    """The queries ``overrefusal run`` builds from a loaded benchmark (built on the clock, as the others' requests)."""
    params = GenerateParams(max_tokens=16)
    return [
        Query.for_prompt(Prompt(id=str(i), text=t, category="x", label="benign"), params)
        for i, t in enumerate(prompts(n, f"ours-{time.time()}"))
    ]


async def ours(url: str, n: int, concurrency: int, store: Store, progress: bool) -> None:
    backend = OpenAIBackend(model="m", base_url=url, concurrency=concurrency)
    try:
        responses = await CachedModel(backend, store, progress=progress).answer(queries(n))
    finally:
        await backend.aclose()
    assert all(r.ok for r in responses), [r.error for r in responses if r.error][:3]


def inspect_model(url: str, concurrency: int) -> object:
    """inspect_ai's OpenAI-compatible model, imported and built before the clock starts."""
    from inspect_ai.model import GenerateConfig, get_model

    os.environ["BENCH_BASE_URL"] = url
    os.environ["BENCH_API_KEY"] = "unused"
    return get_model(
        "openai-api/bench/m",
        config=GenerateConfig(max_connections=concurrency, max_tokens=16, max_retries=3),
        memoize=False,
    )


async def inspect(model: object, n: int) -> None:
    texts = prompts(n, f"inspect-{time.time()}")
    results = await asyncio.gather(*(model.generate(t) for t in texts))  # type: ignore[attr-defined]
    assert all(r.completion for r in results)


def measure(label: str, make: Callable[[], Awaitable[None]], n: int) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    asyncio.run(make())  # type: ignore[arg-type]
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    rate, us = n / wall, cpu / n * 1e6
    print(f"{label:<12} {rate:8.0f} requests/s  {us:7.0f} us CPU/request  ({wall:.2f}s wall)", flush=True)
    return rate, us


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--rounds", type=int, default=3, help="best of this many rounds for each side")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar during our runs")
    parser.add_argument("--no-inspect", action="store_true")
    args = parser.parse_args()
    n, c = args.requests, args.concurrency
    proc, url = start_server(args.latency)
    try:
        with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "store.sqlite3") as store:
            measure("warm-up", lambda: bare(url, 500, c), 500)
            bare_best, ours_best, ours_us = 0.0, 0.0, float("inf")
            for _ in range(args.rounds):
                bare_best = max(bare_best, measure("bare aiohttp", lambda: bare(url, n, c), n)[0])
                run_ours = partial(ours, url, n, c, store, not args.no_progress)
                rate, us = measure("overrefusal", run_ours, n)
                ours_best, ours_us = max(ours_best, rate), min(ours_us, us)
            stored = store.count_responses()[0]
            if stored != n * args.rounds:  # every request answered and committed, or the rate means nothing
                sys.exit(f"error: {stored} answers stored, expected {n * args.rounds}")
            line = f"ratio_vs_bare={ours_best / bare_best:.2f} us_per_request={ours_us:.0f}"
            if not args.no_inspect:
                try:
                    import inspect_ai  # noqa: F401
                    import openai  # noqa: F401
                except ImportError:
                    print("inspect_ai (with openai) not installed: skipping it", flush=True)
                else:
                    inspect_best = 0.0
                    for _ in range(args.rounds):  # the same best-of-N as the other two sides
                        model = inspect_model(url, c)
                        inspect_best = max(inspect_best, measure("inspect_ai", partial(inspect, model, n), n)[0])
                    line += f" ratio_vs_inspect={ours_best / inspect_best:.1f}"
    finally:
        proc.terminate()
        proc.wait(10)
    print(json.dumps({"requests": n, "concurrency": c, "latency_s": args.latency}))
    print(line)


if __name__ == "__main__":
    main()
