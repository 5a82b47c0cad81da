"""What ``run --batch`` costs the harness: 2,000 prompts through a local server's batch endpoints vs per request.

Both runs go to the test server of ``tests/batch_servers.py`` (it answers a batch on its first status
request, so the provider's own queueing, minutes to hours on a hosted API, is left out) with the
keyword judge, each into a fresh store: building and uploading the request file, polling, downloading and
committing the results, against sending the same prompts one by one (concurrency 32).

Last line: ``ratio=<batch seconds / per-request seconds> batch_s=<s> per_request_s=<s>``.

    python benchmarks/batch_overhead.py [--n 2000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from batch_servers import BatchServer  # noqa: E402
from overrefusal.backends import Backend  # noqa: E402
from overrefusal.backends.http import HttpBackend  # noqa: E402
from overrefusal.batches.sender import BatchSender, batch_api  # noqa: E402
from overrefusal.cached_model import BulkSender  # noqa: E402
from overrefusal.runner import run  # noqa: E402
from overrefusal.store import Store  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()

    def batched(backend: Backend, store: Store) -> BulkSender:
        assert isinstance(backend, HttpBackend)
        return BatchSender(batch_api(backend), store, poll_s=0.01, say=lambda line: None)

    times: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp, BatchServer(per_poll=10**9) as server:
        data = Path(tmp) / "bench.csv"
        rows = [f"how do I stop service number {i}?,privacy,benign\n" for i in range(args.n)]
        data.write_text("prompt,category,label\n" + "".join(rows))
        for name, bulk in (("per_request", None), ("batch", batched)):
            os.environ["OVERREFUSAL_HOME"] = str(Path(tmp) / name)
            start = time.perf_counter()
            result = run(
                benchmark=str(data),
                backend="openai",
                backend_args={"model": "m", "base_url": server.openai_url},
                judge="keywords",
                output_dir=None,
                progress=False,
                bulk=bulk,
            )
            times[name] = time.perf_counter() - start
            assert result.complete and result.summary.run.requests_sent == args.n
        assert sum(server.successes.values()) == args.n and len(server.submitted) == args.n
    for name, seconds in times.items():
        print(f"{name}: {seconds:.2f}s for {args.n:,} prompts ({args.n / seconds:.0f} prompts/s, judging included)")
    ratio = times["batch"] / times["per_request"]
    print(f"ratio={ratio:.2f} batch_s={times['batch']:.2f} per_request_s={times['per_request']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
