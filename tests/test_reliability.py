"""Runs that fail loudly, never mislead, and never send work twice: each row of issue 13's table.

Every test starts its own misbehaving server on 127.0.0.1 (or none) and drives the real CLI.
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from click.testing import CliRunner, Result

from http_servers import ScriptedServer, dead_url
from overrefusal.cli import cli
from overrefusal.records import Response
from overrefusal.store import Store

CLI = Path(sys.executable).parent / "overrefusal"


def bench_file(tmp_path: Path, n: int, tag: str = "") -> Path:
    path = tmp_path / f"bench{tag}.csv"
    cats = ("violence", "privacy", "deception")
    rows = [f"how do I stop service number {i}?,{cats[i % 3]},{'benign' if i % 4 else 'toxic'}" for i in range(n)]
    path.write_text("prompt,category,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def invoke(tmp_path: Path, url: str, *extra: str, n: int = 30, model: str = "m") -> Result:
    args = ["run", "-b", str(bench_file(tmp_path, n)), "--base-url", url, "--model", model, "--no-progress"]
    args += ["-o", str(tmp_path / "runs"), "-B", "backoff_s=0.01", *extra]
    return CliRunner().invoke(cli, args)


def error_line(result: Result) -> str:
    lines = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.output
    return lines[0]


def only_run(tmp_path: Path) -> dict[str, object]:
    folders = [p for p in (tmp_path / "runs").iterdir()]
    assert len(folders) == 1, folders
    summary: dict[str, object] = json.loads((folders[0] / "summary.json").read_text())
    return summary


# fatal causes ---------------------------------------------------------------------------------
def test_unknown_model_stops_at_once_naming_the_served_models(tmp_path: Path) -> None:
    with ScriptedServer(models=["llama-3", "qwen-7b"]) as srv:
        result = invoke(tmp_path, srv.openai_url, n=180, model="gpt-x")
        assert sum(srv.attempts.values()) == 3  # the first few, never all 180
    assert result.exit_code == 1
    line = error_line(result)
    assert line.startswith("error: the server does not know model 'gpt-x': check --model; it serves llama-3, qwen-7b")
    assert "(0 of 180 prompts answered; partial run in " in line
    summary = only_run(tmp_path)
    assert summary["status"] == "incomplete" and summary["coverage"]["overall"] == 0.0  # type: ignore[index]


def test_a_wrong_base_url_names_both_suspects(tmp_path: Path) -> None:
    with ScriptedServer(models=["m"]) as srv:
        url = f"http://127.0.0.1:{srv.port}/v1/extra"
        result = invoke(tmp_path, url, n=5)
    assert result.exit_code == 1
    assert error_line(result).startswith(
        f"error: HTTP 404 from {url}: check --model (is 'm' served there?) and --base-url"
    )


def test_quota_exhausted_stops_with_the_cause(tmp_path: Path) -> None:
    body = {"error": {"message": "You exceeded your current quota.", "type": "insufficient_quota"}}
    with ScriptedServer(error_status=429, error_body=body) as srv:
        started = time.monotonic()
        result = invoke(tmp_path, srv.openai_url, n=180)
        assert sum(srv.attempts.values()) == 3
    assert time.monotonic() - started < 10
    assert result.exit_code == 1
    assert error_line(result).startswith(
        "error: the account is out of quota (HTTP 429) (You exceeded your current quota.): add credit"
    )


def test_invalid_request_stops_with_the_server_message(tmp_path: Path) -> None:
    body = {"error": {"message": "max_tokens must be at most 4096"}}
    with ScriptedServer(error_status=400, error_body=body) as srv:
        result = invoke(tmp_path, srv.openai_url, n=30)
        assert sum(srv.attempts.values()) == 3
    assert result.exit_code == 1
    assert "rejected the request as invalid (HTTP 400: max_tokens must be at most 4096)" in error_line(result)


def test_one_invalid_prompt_among_good_ones_does_not_stop_the_run(tmp_path: Path) -> None:
    body = {"error": {"message": "prompt too long"}}
    with ScriptedServer(error_status=400, error_body=body, error_when=lambda text: "number 7?" in text) as srv:
        result = invoke(tmp_path, srv.openai_url, "--concurrency", "1", n=60)
        assert sum(srv.attempts.values()) == 60
    assert result.exit_code == 0, result.output  # 1 of 60 (1.7%) failed: under the 2% default
    assert only_run(tmp_path)["error_rate"] == round(1 / 60, 4)


def test_retry_after_beyond_the_cap_says_until_when(tmp_path: Path) -> None:
    with ScriptedServer(faults={"http_429": 1.0}, retry_after="86400") as srv:
        started = time.monotonic()
        result = invoke(tmp_path, srv.openai_url, n=64)
        assert sum(srv.attempts.values()) <= 3
    assert time.monotonic() - started < 10
    assert result.exit_code == 1
    line = error_line(result)
    assert re.match(
        r"error: the server rate-limits requests until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(Retry-After 86400s, "
        r"more than the 60s cap\): run the same command again then, or pass --max-retry-after 86400 to wait",
        line,
    ), line


def test_retry_after_within_the_cap_is_waited_for(tmp_path: Path) -> None:
    with ScriptedServer(faults={"http_429": 0.3}, retry_after="0.05", seed=3) as srv:
        result = invoke(tmp_path, srv.openai_url, n=30)
    assert result.exit_code == 0, result.output
    assert "status: complete" in result.output


# the circuit breaker -------------------------------------------------------------------------
def test_server_down_from_the_start_gives_up_quickly(tmp_path: Path) -> None:
    started = time.monotonic()
    with dead_url() as url:
        result = invoke(tmp_path, url, "--give-up-after", "0.5", n=1000)
    assert time.monotonic() - started < 15
    assert result.exit_code == 1
    line = error_line(result)
    assert line.startswith(f"error: no answer from {url} since ")
    assert "gave up after 0.5s): start the server or check --base-url, then run the same command again" in line
    assert "(0 of 1000 prompts answered" in line
    assert "requests sent" not in result.output  # no table pretending a result


def test_server_dying_mid_run_gives_an_incomplete_run_left_out_of_reports(tmp_path: Path) -> None:
    with ScriptedServer(die_after=20) as srv:
        result = invoke(tmp_path, srv.openai_url, "--give-up-after", "0.5", "--concurrency", "4", n=60)
    assert result.exit_code == 1
    assert "INCOMPLETE: m on bench" in result.output and "overall (incomplete)" in result.output
    assert "error: no answer from" in error_line(result)
    summary = only_run(tmp_path)
    assert summary["status"] == "incomplete"
    coverage = summary["coverage"]["overall"]  # type: ignore[index]
    assert 0.33 <= coverage < 0.5  # 20 answers of 60, maybe a few more in flight
    assert summary["stop_reason"].startswith("no answer from")  # type: ignore[union-attr]

    # `report` leaves the incomplete run out of the ranking unless asked, and marks it when asked
    run_dir = next((tmp_path / "runs").iterdir())
    from run_factory import make_run

    other = make_run(tmp_path / "other", "complete-model", benchmark="bench")
    page = tmp_path / "cmp.html"
    res = CliRunner().invoke(cli, ["report", str(run_dir), str(other), "-o", str(page)])
    assert res.exit_code == 0, res.output
    assert "Left out: " in res.output and "is incomplete (no answer from" in res.output
    html = page.read_text()
    assert "complete-model" in html and ">m <b" not in html
    res = CliRunner().invoke(cli, ["report", str(run_dir), str(other), "-o", str(page), "--include-incomplete"])
    assert res.exit_code == 0, res.output
    assert 'class="incomplete">INCOMPLETE</b>' in page.read_text()
    res = CliRunner().invoke(cli, ["report", str(run_dir), "-o", str(page)])
    assert res.exit_code == 2 and "every run given is incomplete" in res.output


def test_a_hanging_server_gives_up_after_the_bound(tmp_path: Path) -> None:
    with ScriptedServer(hold_after=0) as srv:
        started = time.monotonic()
        result = invoke(tmp_path, srv.openai_url, "--give-up-after", "0.5", "-B", "timeout_s=0.2", n=64)
        assert time.monotonic() - started < 15
    assert result.exit_code == 1
    assert "error: no answer from" in error_line(result)


def test_too_many_errors_make_the_run_incomplete(tmp_path: Path) -> None:
    # one retry only against 40% 500s: about 16% of prompts fail, far above the 2% default
    with ScriptedServer(faults={"http_500": 0.4}, seed=5) as srv:
        result = invoke(tmp_path, srv.openai_url, "-B", "max_retries=1", n=60)
    assert result.exit_code == 1
    line = error_line(result)
    assert re.match(r"error: the run is incomplete: \d+\.\d% of prompts have no answer, more than ", line), line
    assert "--max-error-rate 2%" in line
    assert only_run(tmp_path)["status"] == "incomplete"
    with ScriptedServer() as srv:  # the same command again retries the failed prompts and completes
        again = invoke(tmp_path, srv.openai_url, n=60)
    assert again.exit_code == 0, again.output


# concurrent runs -----------------------------------------------------------------------------
def test_two_concurrent_runs_send_each_request_exactly_once(tmp_path: Path) -> None:
    n = 200
    data = bench_file(tmp_path, n)
    env = {**os.environ, "OVERREFUSAL_HOME": str(tmp_path / "home")}
    with ScriptedServer(latency_s=0.01) as srv:
        cmd = [str(CLI), "run", "-b", str(data), "--base-url", srv.openai_url, "--model", "m", "--concurrency", "8"]
        cmd += ["--no-progress", "--json", "-o", str(tmp_path / "runs"), "-j", "keywords"]
        procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
        outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-500:] for o in outs]
    assert len(srv.successes) == n
    assert all(count == 1 for count in srv.successes.values()), srv.successes.most_common(3)
    assert sum(srv.attempts.values()) == n
    summaries = [json.loads(o[0]) for o in outs]
    assert sum(s["run"]["requests_sent"] for s in summaries) == n
    assert all(s["status"] == "complete" for s in summaries)
    folders = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert len(folders) == 2 and not any(f.startswith(".") for f in folders)  # unique names, no crash
    with sqlite3.connect(tmp_path / "home" / "store.sqlite3") as db:
        assert db.execute("SELECT COUNT(*) FROM leases").fetchone()[0] == 0  # every lease ended


def test_a_lease_of_a_killed_process_is_taken_over_at_once(tmp_path: Path, store: Store) -> None:
    from overrefusal.leases import Leases

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    ghost = f"{socket.gethostname()}:{dead.pid}:abc"
    assert store.take_leases(["k1", "k2"], ghost, ttl_s=3600) == ["k1", "k2"]
    mine = Leases(store)
    assert mine.take(["k1"]) == []  # held (not expired) ...
    assert mine.take_free(["k1", "k2"]) == ["k1", "k2"]  # ... but its holder is gone
    store.put_responses([Response(key="k1", prompt_id="p", model="m", text="a")])
    other = Leases(store)
    assert other.take(["k1", "k2"]) == []  # answered, or held by a live process
    mine.stop()  # a finished process ends all its leases
    assert store.lease_owners(["k1", "k2"]) == {}
    assert other.take(["k1", "k2"]) == ["k2"]  # an answered key is never leased again


# secrets -------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["openai", "anthropic"])
def test_credentials_never_follow_a_redirect_to_another_origin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    secret = "sk-redirect-0123456789"
    monkeypatch.setenv("K", secret)
    with ScriptedServer() as elsewhere:
        with ScriptedServer(redirect_to=f"http://127.0.0.1:{elsewhere.port}") as first:
            url = first.openai_url if backend == "openai" else first.anthropic_url
            result = invoke(tmp_path, url, "--backend", backend, "--api-key-env", "K", n=6)
        assert first.auth_seen and all(secret in a for a in first.auth_seen)  # the configured origin gets the key
    assert elsewhere.auth_seen and all(secret not in a for a in elsewhere.auth_seen), elsewhere.auth_seen
    assert result.exit_code == 0, result.output  # the other server needs no key here: answers come back


def test_a_redirect_to_a_server_that_wants_the_key_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("K", "sk-redirect-abcdefgh")
    with (
        ScriptedServer(error_status=401) as elsewhere,
        ScriptedServer(redirect_to=f"http://127.0.0.1:{elsewhere.port}") as first,
    ):
        result = invoke(tmp_path, first.openai_url, "--api-key-env", "K", n=6)
    assert result.exit_code == 1
    assert f"redirects to another origin (http://127.0.0.1:{elsewhere.port})" in error_line(result)
    assert all("sk-redirect" not in a for a in elsewhere.auth_seen)


def test_keys_echoed_in_any_encoding_are_masked_everywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-live/abc+def=0123456789"
    monkeypatch.setenv("K", secret)
    forms = [secret, quote(secret, safe=""), json.dumps(secret)[1:-1], base64.b64encode(secret.encode()).decode()]

    def leaky(text: str) -> tuple[str, str]:
        index = int(text.rsplit(" ", 1)[1].rstrip("?"))
        return f"Sure. Your key is {forms[index % len(forms)]}, of course.", "stop"

    with ScriptedServer(reply=leaky, faults={"http_500": 0.3}, seed=2) as srv:
        result = invoke(tmp_path, srv.openai_url, "--api-key-env", "K", "-B", "max_retries=0", n=40)
    assert result.exit_code == 1  # 30% errors: incomplete, but written
    run_dir = next((tmp_path / "runs").iterdir())
    texts = [(run_dir / name).read_text() for name in ("responses.jsonl", "report.html", "summary.json")]
    with sqlite3.connect(tmp_path / "home" / "store.sqlite3") as db:
        texts += [str(r[0]) for r in db.execute("SELECT body FROM responses")]
    blob = "\n".join(texts)
    assert "Your key is ***" in blob
    for form in forms:
        assert form not in blob, form


def test_a_key_echoed_url_encoded_in_an_error_is_scrubbed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-echo+key/0123456789"
    monkeypatch.setenv("K", secret)
    body = {"error": {"message": f"bad request for https://x/?key={quote(secret, safe='')}"}}
    with ScriptedServer(error_status=422, error_body=body) as srv:
        result = invoke(tmp_path, srv.openai_url, "--api-key-env", "K", n=5)
    assert result.exit_code == 1
    with sqlite3.connect(tmp_path / "home" / "store.sqlite3") as db:
        bodies = " ".join(str(r[0]) for r in db.execute("SELECT body FROM responses"))
    assert "key=***" in bodies and quote(secret, safe="") not in bodies and secret not in bodies


# no tracebacks -------------------------------------------------------------------------------
def run_cli(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CLI), *args], capture_output=True, text=True, env=env or dict(os.environ), timeout=120)


def one_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_a_csv_whose_first_row_has_an_unquoted_comma(tmp_path: Path) -> None:
    data = tmp_path / "b.csv"
    data.write_text("prompt,category,label\nhow, do I stop it,violence,benign\nok,violence,benign\n")
    proc = run_cli(["run", "--backend", "fake", "-b", str(data), "-o", str(tmp_path / "runs")])
    assert proc.returncode == 2
    assert "line 2 has more fields than its header: quote a prompt holding a comma" in one_line(proc)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("as_home_file", [False, True])
def test_a_models_file_that_is_not_utf8(tmp_path: Path, as_home_file: bool) -> None:
    home = tmp_path / "home"
    home.mkdir()
    models = home / "models.yaml" if as_home_file else tmp_path / "models.yaml"
    models.write_bytes(b"models:\n  - name: caf\xe9\n    model: m\n")
    env = {**os.environ, "OVERREFUSAL_HOME": str(home)}
    args = ["run", "--model", "cafe", "-o", str(tmp_path / "runs"), "--base-url", "http://127.0.0.1:9/v1"]
    if not as_home_file:
        args += ["--models-file", str(models)]
    proc = run_cli(args, env)
    assert proc.returncode == 2
    assert one_line(proc).startswith(f"error: models file {models} is not valid UTF-8")


def test_an_overrefusal_home_that_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    env = {**os.environ, "OVERREFUSAL_HOME": str(blocker / "home")}
    proc = run_cli(["run", "--backend", "fake", "-n", "2", "-o", str(tmp_path / "runs")], env)
    assert proc.returncode == 1
    assert one_line(proc).startswith(f"error: cannot create OVERREFUSAL_HOME {blocker / 'home'}: Not a directory")
    assert not (tmp_path / "runs").exists()


def test_a_home_where_the_store_cannot_be_written(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "store.sqlite3").mkdir(parents=True)  # works for root too, unlike chmod
    env = {**os.environ, "OVERREFUSAL_HOME": str(home)}
    proc = run_cli(["run", "--backend", "fake", "-n", "2", "-o", str(tmp_path / "runs")], env)
    assert proc.returncode == 1
    line = one_line(proc)
    assert line.startswith(f"error: cannot write the store {home / 'store.sqlite3'}")
    assert line.endswith("set OVERREFUSAL_HOME to a folder you can write")
    assert not (tmp_path / "runs").exists()  # no empty output folder left behind


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes read-only folders")
def test_a_read_only_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o555)
    env = {**os.environ, "OVERREFUSAL_HOME": str(home)}
    proc = run_cli(["run", "--backend", "fake", "-n", "2", "-o", str(tmp_path / "runs")], env)
    assert proc.returncode == 1
    assert "set OVERREFUSAL_HOME to a folder you can write" in one_line(proc)
    assert not (tmp_path / "runs").exists()


def _damage(path: Path, how: str) -> None:
    with Store(path) as store:
        store.put_responses(
            [Response(key=f"k{i}", prompt_id=str(i), model="m", text="answer " * 60) for i in range(1500)]
        )
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        if how == "row":
            db.execute("UPDATE responses SET body = 'not json' WHERE key = 'k7'")
        if how == "table":
            db.execute("DROP TABLE verdicts")
    if how == "page":
        data = bytearray(path.read_bytes())
        data[4096 * 30 : 4096 * 30 + 300] = b"\xff" * 300
        path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["page", "row", "table"])
def test_a_damaged_store_is_detected_backed_up_and_repaired(tmp_path: Path, how: str) -> None:
    home = tmp_path / "home"
    home.mkdir()
    path = home / "store.sqlite3"
    _damage(path, how)
    env = {**os.environ, "OVERREFUSAL_HOME": str(home)}
    check = run_cli(["store", "check"], env)
    assert check.returncode == 1
    assert one_line(check).startswith(f"store {path} is damaged: ") and "overrefusal store repair" in check.stderr
    if how != "row":  # a bad row is found when it is read; a bad page or a missing table on open
        proc = run_cli(["run", "--backend", "fake", "-n", "2", "-o", str(tmp_path / "runs")], env)
        assert proc.returncode == 1
        line = one_line(proc)
        assert line.startswith(f"error: the store {path} is damaged (") and "a copy is in " in line
        assert "run `overrefusal store repair`" in line
        assert list(home.glob("store.sqlite3.damaged-*"))
    else:
        with Store(path) as store, pytest.raises(Exception, match="the response k7 is not a valid record"):
            store.get_responses(["k7"])
    repaired = run_cli(["store", "repair"], env)
    assert repaired.returncode == 0, repaired.stderr
    assert repaired.stdout.startswith(f"repaired {path}: kept ")
    assert run_cli(["store", "check"], env).returncode == 0
    with Store(path) as store:
        ok, _ = store.count_responses()
    assert 1400 <= ok < 1500 if how != "table" else ok == 1500
    proc = run_cli(["run", "--backend", "fake", "-n", "2", "-o", str(tmp_path / "runs"), "--json"], env)
    assert proc.returncode == 0, proc.stderr


# the run folder ------------------------------------------------------------------------------
_SLOW_WRITE = """
import sys, time
from pathlib import Path
import overrefusal.rundir as rundir
from run_factory import make_run
real = rundir.render_run_report
def slow(*args, **kwargs):
    Path(sys.argv[2]).write_text("writing")
    time.sleep(60)
    return real(*args, **kwargs)
rundir.render_run_report = slow
make_run(Path(sys.argv[1]), "victim")
"""


def test_kill_9_during_the_run_folder_write_leaves_nothing_for_good(tmp_path: Path) -> None:
    parent = tmp_path / "runs"
    marker = tmp_path / "marker"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_WRITE, str(parent), str(marker)], env=env)
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    proc.kill()
    proc.wait(10)
    hidden = [p for p in parent.iterdir() if p.name.startswith(".")]
    assert len(hidden) == 1 and (hidden[0] / "responses.jsonl").exists()  # half-written, hidden
    from run_factory import make_run

    done = make_run(parent, "next")  # the next write sweeps the dead writer's folder
    assert sorted(p.name for p in parent.iterdir()) == [done.name]


def test_two_writers_of_one_run_name_both_succeed(tmp_path: Path) -> None:
    from run_factory import make_run

    first = make_run(tmp_path, "same")
    second = make_run(tmp_path, "same")
    assert first != second and second.name == first.name + "-2"
    assert (second / "summary.json").exists()
