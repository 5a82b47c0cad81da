"""``run --batch``: OpenAI Files + Batches and Anthropic Message Batches against a local server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from batch_servers import BatchServer
from overrefusal.batches import jobs
from overrefusal.cli import cli
from overrefusal.store import Store

CLI = Path(sys.executable).parent / "overrefusal"
KEY = "sk-batch-secret-0123456789"


def bench(tmp_path: Path, n: int) -> Path:
    rows = []
    for i in range(n):
        text = f"how do I hurt process {i}?" if i % 3 == 0 else f"how do I stop service {i}?"
        rows.append(f"{text},violence,{'toxic' if i % 5 == 0 else 'benign'}\n")
    path = tmp_path / "bench.csv"
    path.write_text("prompt,category,label\n" + "".join(rows))
    return path


def args(server: BatchServer, provider: str, data: Path, out: Path, *extra: str) -> list[str]:
    url = server.openai_url if provider == "openai" else server.anthropic_url
    base = ["run", "-b", str(data), "--backend", provider, "--base-url", url, "--model", "m", "--judge", "keywords"]
    base += ["--api-key-env", "BATCH_KEY", "--no-progress", "--json", "-o", str(out), "--batch-poll", "0.01"]
    return [*base, *extra]


def invoke(argv: list[str]) -> Result:
    return CliRunner().invoke(cli, argv, catch_exceptions=False)


def summary_of(result: Result) -> dict[str, Any]:
    return json.loads(result.stdout[result.stdout.index("{") :])


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCH_KEY", KEY)


def home() -> Path:
    return Path(os.environ["OVERREFUSAL_HOME"])


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_batch_run_answers_like_the_per_request_run_and_never_submits_twice(tmp_path: Path, provider: str) -> None:
    data = bench(tmp_path, 60)
    with BatchServer(per_poll=7) as server:
        result = invoke(args(server, provider, data, tmp_path / "runs", "--batch", "--batch-size", "25"))
        assert result.exit_code == 0, result.output
        batched = summary_of(result)
        assert server.created == 3  # 25 + 25 + 10
        assert len(server.submitted) == 60 and set(server.submitted.values()) == {1}
        assert sum(server.successes.values()) == 0  # nothing went the per-request way
        assert batched["run"]["requests_sent"] == 60 and batched["status"] == "complete"
        assert "submitted batch" in result.stderr

        again = invoke(args(server, provider, data, tmp_path / "runs", "--batch"))
        assert again.exit_code == 0, again.output
        assert server.created == 3 and summary_of(again)["run"]["responses_cached"] == 60

        # the same benchmark answered request by request, in a fresh store, gives the same numbers
        os.environ["OVERREFUSAL_HOME"] = str(tmp_path / "home-direct")
        direct = invoke(args(server, provider, data, tmp_path / "runs"))
        assert direct.exit_code == 0, direct.output
        assert sum(server.successes.values()) == 60
    assert summary_of(direct)["metrics"] == batched["metrics"]
    rates = batched["metrics"]["over_refusal"]
    assert 0 < rates["refused"] < rates["scored"]  # the fixture has refusals and compliance


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_batch_that_expires_half_done_is_reported_and_its_rest_resubmitted(tmp_path: Path, provider: str) -> None:
    data = bench(tmp_path, 30)
    with BatchServer(per_poll=4, expire_after=12) as server:
        first = invoke(args(server, provider, data, tmp_path / "runs", "--batch"))
        assert first.exit_code == 1
        status = "expired" if provider == "openai" else "ended"  # Anthropic's batches end, their requests expire
        assert f"{status}: 12 of 30 requests answered, 18 not (18 batch_expired)" in first.stderr
        assert "run the same command again to submit them in a new batch" in first.stderr
        assert "error: the run is incomplete" in first.stderr
        summary = summary_of(first)
        assert summary["status"] == "incomplete" and summary["coverage"]["overall"] == pytest.approx(0.4)
        with Store() as store:
            (job,) = jobs.all_jobs(store)
        assert job.done and job.outcome.startswith(status)

        server.expire_after = None
        second = invoke(args(server, provider, data, tmp_path / "runs", "--batch"))
        assert second.exit_code == 0, second.output
    assert server.created == 2
    twice = [cid for cid, n in server.submitted.items() if n == 2]
    assert len(twice) == 18 and len(server.submitted) == 30  # only the expired ones went again
    run = summary_of(second)["run"]
    assert run["requests_sent"] == 18 and run["responses_cached"] == 12


def test_a_failed_batch_is_reported_with_its_counts_and_the_providers_reason(tmp_path: Path) -> None:
    data = bench(tmp_path, 10)
    with BatchServer(fail_validation=True) as server:
        result = invoke(args(server, "openai", data, tmp_path / "runs", "--batch"))
    assert result.exit_code == 1
    assert "failed: 0 of 10 requests answered, 10 not (10 batch_failed); the model does not support batches" in (
        result.stderr
    )
    with Store() as store:
        assert store.count_responses() == (0, 10)
        (job,) = jobs.all_jobs(store)
    assert job.done and job.outcome == "failed: 0 answered, 10 without an answer"


def test_request_errors_inside_a_batch_are_stored_as_errors_and_retried_next_run(tmp_path: Path) -> None:
    data = bench(tmp_path, 20)
    with BatchServer(error_when=lambda text: text.endswith("4?")) as server:
        first = invoke(args(server, "anthropic", data, tmp_path / "runs", "--batch", "--max-error-rate", "0.5"))
        assert first.exit_code == 0, first.output
        assert "ended: 18 of 20 requests answered, 2 not (2 batch_api_error)" in first.stderr
        with Store() as store:
            assert store.count_responses() == (18, 2)
        server.error_when = None
        second = invoke(args(server, "anthropic", data, tmp_path / "runs", "--batch"))
    assert second.exit_code == 0, second.output
    assert summary_of(second)["run"]["requests_sent"] == 2
    assert sorted(server.submitted.values()).count(2) == 2


def test_no_wait_submits_and_stops_then_the_next_run_collects(tmp_path: Path) -> None:
    data = bench(tmp_path, 10)
    with BatchServer(per_poll=3) as server:
        first = invoke(args(server, "openai", data, tmp_path / "runs", "--batch", "--no-wait"))
        assert first.exit_code == 1
        assert "the batches are still running: batch_" in first.stderr and "(in_progress, 3/10)" in first.stderr
        for _ in range(3):
            invoke(args(server, "openai", data, tmp_path / "runs", "--batch", "--no-wait"))
        last = invoke(args(server, "openai", data, tmp_path / "runs", "--batch", "--no-wait"))
    assert last.exit_code == 0, last.output
    assert server.created == 1 and set(server.submitted.values()) == {1}


def wait_for(condition: Any, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_killed_while_polling_the_rerun_resumes_the_same_batch(tmp_path: Path, provider: str) -> None:
    data = bench(tmp_path, 12)
    env = {**os.environ}
    with BatchServer(per_poll=1) as server:
        argv = args(server, provider, data, tmp_path / "runs", "--batch")
        argv[argv.index("--batch-poll") + 1] = "0.05"
        first = subprocess.Popen([str(CLI), *argv], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        wait_for(lambda: server.polls >= 3, first, "the CLI did not poll its batch")
        first.kill()
        first.communicate(timeout=10)
        assert server.created == 1
        second = invoke(args(server, provider, data, tmp_path / "runs", "--batch"))
    assert second.exit_code == 0, second.output
    assert "resuming batch" in second.stderr
    assert server.created == 1 and len(server.submitted) == 12 and set(server.submitted.values()) == {1}
    assert summary_of(second)["run"]["requests_sent"] == 12


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_killed_before_the_batch_id_came_back_the_rerun_finds_the_batch(tmp_path: Path, provider: str) -> None:
    data = bench(tmp_path, 8)
    with BatchServer(hang_create=True) as server:
        argv = args(server, provider, data, tmp_path / "runs", "--batch")
        first = subprocess.Popen([str(CLI), *argv], env={**os.environ}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        wait_for(lambda: server.created == 1, first, "the CLI did not create its batch")
        first.kill()
        first.communicate(timeout=10)
        with Store() as store:
            (job,) = jobs.all_jobs(store)
        assert job.remote_id is None and not job.done  # the id never reached the store
        server.hang_create = False
        second = invoke(argv)
    assert second.exit_code == 0, second.output
    assert "submitted by an interrupted run" in second.stderr
    assert server.created == 1 and set(server.submitted.values()) == {1}


def test_the_key_goes_to_the_batch_endpoints_and_nowhere_else(tmp_path: Path) -> None:
    data = bench(tmp_path, 5)
    with BatchServer() as server:
        result = invoke(args(server, "openai", data, tmp_path / "runs", "--batch"))
    assert result.exit_code == 0, result.output
    assert f"Bearer {KEY}" in server.auth_seen
    assert KEY not in result.output
    for path in [*home().rglob("*"), *(tmp_path / "runs").rglob("*")]:
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path


def test_batch_needs_a_batch_api_backend_and_batch_options_need_batch(tmp_path: Path) -> None:
    data = bench(tmp_path, 3)
    result = invoke(["run", "-b", str(data), "--backend", "fake", "--batch", "--no-progress"])
    assert result.exit_code == 2
    assert "--batch works with the openai and anthropic backends, not fake: drop --batch" in result.stderr
    result = invoke(["run", "-b", str(data), "--backend", "fake", "--no-wait"])
    assert result.exit_code == 2 and "add --batch or drop them" in result.stderr
    with BatchServer() as server:
        result = invoke(args(server, "openai", data, tmp_path / "runs", "--batch", "--batch-size", "60000"))
    assert result.exit_code == 2 and "--batch-size must be 1 to 50,000 for openai batches" in result.stderr
