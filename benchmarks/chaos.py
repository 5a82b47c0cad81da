"""Chaos: 2,000 prompts against a faulty local server, killed with SIGKILL at 5 random points and resumed,
while a second process runs the same command on the same home.

The server (tests/http_servers.py, in a subprocess) answers with the acceptance fault mix: 10% HTTP 500,
5% 429 with Retry-After, 2% connection resets, 1% malformed JSON, 1% timeouts. Process A is killed
(``kill -9``) at 5 seeded random points (0.1 to 0.6 s after it has started sending) and started again
at once; process B (concurrency 4) runs once, start to end, beside it. Both end with the same complete run.

Measured:

* ``lost``: prompts without an answer at the end (in the store and in the final run of each process);
* ``duplicate_requests``: answers the server gave more than once for one prompt;
* ``incomplete_flagged``: 1 when either final run is marked incomplete (or exits non-zero).

Targets: lost 0; duplicate_requests no more than the requests in flight at the kills (for each kill, the
keys the killed process had leased without a stored answer, at most its concurrency); final runs complete.
The script exits 1 when a target is missed. Last line: ``lost=<n> duplicate_requests=<m> incomplete_flagged=<0|1>``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLI = Path(sys.executable).parent / "overrefusal"
FAULT_MIX = {"http_500": 0.10, "http_429": 0.05, "reset": 0.02, "malformed": 0.01, "timeout": 0.01}


def stored(db: Path, sql: str, args: tuple[object, ...] = ()) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return int(conn.execute(sql, args).fetchone()[0])
    except sqlite3.OperationalError:  # not created yet
        return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prompts", type=int, default=2000)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="overrefusal-chaos-"))
    data = work / "bench.csv"
    cats = ("violence", "privacy", "deception", "illegal")
    rows = [f"chaos prompt {i}: how do I stop a stuck service?,{cats[i % 4]},benign" for i in range(args.prompts)]
    data.write_text("prompt,category,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    home = work / "home"
    db = home / "store.sqlite3"
    env = {**os.environ, "OVERREFUSAL_HOME": str(home)}
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "http_servers.py"), "--latency", str(args.latency)]
        + ["--faults", json.dumps(FAULT_MIX), "--seed", str(args.seed), "--timeout-sleep", "2"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    port = int(server.stdout.readline())
    url = f"http://127.0.0.1:{port}"
    cmd = [str(CLI), "run", "-b", str(data), "--base-url", f"{url}/v1", "--model", "m", "-j", "keywords"]
    cmd += ["--concurrency", str(args.concurrency), "--no-progress", "--json", "-o", str(work / "runs")]
    cmd += ["-B", "timeout_s=1", "-B", "backoff_s=0.05"]
    delays = [rng.uniform(0.1, 0.6) for _ in range(args.kills)]  # the random kill points
    in_flight = 0
    kills = 0
    started = time.monotonic()
    try:
        a = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(0.3)
        # the second process, slower, so that the first one does most of the work and can be killed 5 times
        second = [c if c != str(args.concurrency) else "4" for c in cmd]
        b = subprocess.Popen(second, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for delay in delays:
            # the (re)started process must have taken work: a kill before it sends anything proves nothing
            while stored(db, "SELECT COUNT(*) FROM leases WHERE owner LIKE ?", (f"%:{a.pid}:%",)) == 0:
                if a.poll() is not None:
                    break
                time.sleep(0.005)
            time.sleep(delay)
            if a.poll() is not None:
                break
            a.send_signal(signal.SIGKILL)
            a.wait()
            kills += 1
            # what the killed process could have lost: keys it leased that have no stored answer (sent and
            # unanswered, answered and not yet committed, or leased ahead and not yet sent), and never more
            # than its requests in flight at once
            held = stored(
                db,
                "SELECT COUNT(*) FROM leases WHERE owner LIKE ? "
                "AND key NOT IN (SELECT key FROM responses WHERE ok = 1)",
                (f"%:{a.pid}:%",),
            )
            answers = stored(db, "SELECT COUNT(*) FROM responses WHERE ok = 1")
            in_flight += min(held, args.concurrency)
            print(
                f"kill -9 at {answers} stored answers: {held} leased keys unanswered, "
                f"{min(held, args.concurrency)} of them counted in flight",
                flush=True,
            )
            a = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        finals = [p.communicate(timeout=600) for p in (a, b)]
        codes = [a.returncode, b.returncode]
        with urllib.request.urlopen(f"{url}/stats", timeout=10) as answer:
            stats = json.loads(answer.read())
    finally:
        server.terminate()  # not SIGINT: a run started in the background (nohup, CI jobs) passes SIGINT on ignored
        server.wait(10)
    duplicates = sum(max(0, count - 1) for count in stats["successes"].values())
    answered = stored(db, "SELECT COUNT(*) FROM responses WHERE ok = 1")
    lost = args.prompts - answered
    incomplete = 0
    for (out, err), code in zip(finals, codes, strict=True):
        try:
            summary = json.loads(out)
        except ValueError:
            summary = {}
        if code != 0 or summary.get("status") != "complete":
            incomplete = 1
            print(f"a final run exited {code}: {err.decode()[-300:]}", flush=True)
        if summary:
            lost = max(lost, args.prompts - round(summary["coverage"]["overall"] * args.prompts))
    elapsed = time.monotonic() - started
    print(
        f"{args.prompts} prompts, {kills} kills, {stats['attempts']} requests received, "
        f"{in_flight} in flight at the kills, {elapsed:.1f}s",
        flush=True,
    )
    print(f"lost={lost} duplicate_requests={duplicates} incomplete_flagged={incomplete}")
    if kills < args.kills:
        print(f"only {kills} of {args.kills} kills happened before the run ended: use more --prompts", flush=True)
    if lost or duplicates > in_flight or incomplete or kills < args.kills:
        sys.exit(1)


if __name__ == "__main__":
    main()
