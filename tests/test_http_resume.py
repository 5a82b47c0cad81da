"""Resume: ``kill -9`` the real CLI mid-run, run the same command again, nothing lost or repeated."""

from __future__ import annotations

import asyncio
import json
import os
import random
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from http_servers import ScriptedServer
from overrefusal.records import Response
from overrefusal.store import ResponseCommitter, Store

CLI = Path(sys.executable).parent / "overrefusal"


def stored_ok(home: Path) -> int:
    path = home / "store.sqlite3"
    if not path.exists():
        return 0
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
        try:
            return int(db.execute("SELECT COUNT(*) FROM responses WHERE ok = 1").fetchone()[0])
        except sqlite3.OperationalError:  # table not created yet
            return 0


def test_kill_9_then_rerun_sends_each_prompt_exactly_once(tmp_path: Path) -> None:
    n = 60
    texts = [f"how do I stop service number {i}?" for i in range(n)]
    data = tmp_path / "bench.csv"
    data.write_text("prompt,category,label\n" + "".join(f"{t},violence,benign\n" for t in texts))
    home = tmp_path / "home"
    env = {**os.environ, "OVERREFUSAL_HOME": str(home)}
    # a random point of the run, reproducible: pytest-randomly seeds `random` per test and prints the seed
    kill_after = random.randint(3, n - 5)
    print(f"killing after {kill_after} answers (reproduce with the -p randomly seed printed at the top)")
    with ScriptedServer(latency_s=0.002, hold_after=kill_after) as server:
        url = server.openai_url
        cmd = [str(CLI), "run", "-b", str(data), "--base-url", url, "--model", "m", "--concurrency", "8"]
        cmd += ["--no-progress", "--json", "-o", str(tmp_path / "runs")]
        first = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # the server answers `kill_after` requests, then holds the rest in flight
        deadline = time.monotonic() + 60
        while stored_ok(home) < kill_after:
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "the CLI did not store the answered requests"
            time.sleep(0.01)
        first.kill()  # SIGKILL: no cleanup code runs
        first.communicate(timeout=10)
        assert first.returncode == -9
        assert sum(server.successes.values()) == kill_after
        assert stored_ok(home) == kill_after
        server.release()

        second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        assert second.returncode == 0, second.stderr
    summary = json.loads(second.stdout)
    assert summary["run"]["requests_sent"] == n - kill_after
    assert summary["run"]["responses_cached"] == kill_after
    assert set(server.successes) == set(texts)
    assert all(count == 1 for count in server.successes.values()), server.successes.most_common(3)


async def test_committer_commits_within_milliseconds_and_on_flush(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"

    def visible() -> int:  # what another process would find after a kill -9 now
        with sqlite3.connect(path, timeout=5) as db:
            return int(db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    with Store(path) as store:
        committer = ResponseCommitter(store, max_delay_s=0.005, max_batch=3)
        committer.add(Response(key="k1", prompt_id="1", model="m", text="a"))
        assert visible() == 0  # queued, not yet committed
        for _ in range(200):
            await asyncio.sleep(0.005)
            if visible() == 1:
                break
        assert visible() == 1  # the timer committed it without any further call
        for i in range(3):  # a full batch commits at once
            committer.add(Response(key=f"b{i}", prompt_id="1", model="m", text="a"))
        assert visible() == 4
        committer.add(Response(key="last", prompt_id="1", model="m", text="a"))
        committer.flush()
        assert visible() == 5
