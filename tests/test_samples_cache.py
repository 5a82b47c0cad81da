"""--samples, --no-cache, --cache-tag and what summary.json records, through the CLI against a local server."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from http_servers import ScriptedServer
from overrefusal.cli import cli

REFUSAL = "I'm sorry, but I can't help with that."


def write_bench(tmp_path: Path) -> Path:
    path = tmp_path / "bench.jsonl"
    rows = [{"id": f"b{i}", "prompt": f"benign {i}", "category": "c", "label": "benign"} for i in range(4)]
    rows += [{"id": f"t{i}", "prompt": f"toxic {i}", "category": "c", "label": "toxic"} for i in range(2)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def seeded(protocol: str, text: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """benign 0 is refused on every sample, benign 1 on odd seeds only; toxic prompts always refused."""
    refuse = text == "benign 0" or text.startswith("toxic") or (text == "benign 1" and body["seed"] % 2 == 1)
    content = REFUSAL if refuse else f"Sure: {text} (seed {body['seed']})"
    return 200, {
        "model": "ckpt-served",
        "system_fingerprint": f"fp_{body['temperature']}",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 2, "completion_tokens": 5},
    }


@pytest.fixture
def server() -> Any:
    with ScriptedServer(answer=seeded) as srv:
        yield srv


def invoke(tmp_path: Path, server: ScriptedServer, *args: str) -> dict[str, Any]:
    result = CliRunner().invoke(
        cli,
        ["run", "--no-progress", "--json", "--base-url", server.openai_url, "-m", "ckpt", "-j", "keywords",
         "-b", str(write_bench(tmp_path)), "-o", str(tmp_path / "runs"), *args],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


def test_samples_are_cached_per_index_and_rated_per_prompt(tmp_path: Path, server: ScriptedServer) -> None:
    summary = invoke(tmp_path, server, "--samples", "4", "--temperature", "0.7")
    seeds = Counter(body["seed"] for body in server.bodies)
    assert seeds == {0: 6, 1: 6, 2: 6, 3: 6}  # each sample has its own seed
    run = summary["run"]
    assert (run["samples"], run["requests_sent"], run["responses_cached"]) == (4, 24, 0)
    benign = summary["metrics"]["over_refusal"]
    # per prompt: benign 0 refused 4/4, benign 1 2/4, benign 2 and 3 0/4 -> mean of (1, .5, 0, 0)
    assert benign["rate"] == pytest.approx(0.375)
    assert (benign["refused"], benign["scored"], benign["prompts_scored"]) == (6, 16, 4)
    # four prompts carry the information of about four answers, not sixteen: the interval is wide
    assert benign["ci_high"] - benign["ci_low"] > 0.45
    assert summary["metrics"]["samples"] == 4
    folder = next((tmp_path / "runs").iterdir())
    samples = [json.loads(line)["response"]["sample"] for line in (folder / "responses.jsonl").read_text().splitlines()]
    assert samples == [0, 1, 2, 3] * 6
    # asking again sends nothing; asking for more samples sends only the new ones
    again = invoke(tmp_path, server, "--samples", "4", "--temperature", "0.7")
    assert (again["run"]["requests_sent"], again["run"]["responses_cached"]) == (0, 24)
    more = invoke(tmp_path, server, "--samples", "5", "--temperature", "0.7")
    assert (more["run"]["requests_sent"], more["run"]["responses_cached"]) == (6, 24)


def test_samples_at_temperature_zero_warn(tmp_path: Path, server: ScriptedServer) -> None:
    result = CliRunner().invoke(
        cli,
        ["run", "--no-progress", "--base-url", server.openai_url, "-m", "ckpt", "-j", "keywords", "--samples", "2",
         "-b", str(write_bench(tmp_path)), "-o", str(tmp_path / "runs")],
    )  # fmt: skip
    assert result.exit_code == 0
    assert "warning: --samples 2 at temperature 0" in result.stderr


def test_no_cache_and_cache_tags(tmp_path: Path, server: ScriptedServer) -> None:
    first = invoke(tmp_path, server)
    assert first["run"]["requests_sent"] == 6
    cached = invoke(tmp_path, server)
    assert (cached["run"]["requests_sent"], cached["run"]["responses_cached"]) == (0, 6)
    fresh = invoke(tmp_path, server, "--no-cache")
    assert (fresh["run"]["requests_sent"], fresh["run"]["no_cache"]) == (6, True)
    tagged = invoke(tmp_path, server, "--cache-tag", "checkpoint-2")
    assert (tagged["run"]["requests_sent"], tagged["run"]["cache_tag"]) == (6, "checkpoint-2")
    assert invoke(tmp_path, server, "--cache-tag", "checkpoint-2")["run"]["requests_sent"] == 0
    assert invoke(tmp_path, server)["run"]["requests_sent"] == 0  # the untagged cache is still there
    assert len(server.bodies) == 18


def test_summary_records_what_decides_the_numbers(
    tmp_path: Path, server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_KEY", "sk-secret-never-written")
    summary = invoke(
        tmp_path, server, "--api-key-env", "MY_KEY", "--base-url", server.openai_url.replace("127.0.0.1", "localhost"),
        "-B", 'extra_body={"top_k": 20, "stop": ["END", "STOP"]}', "-B", "timeout_s=30",
        "--temperature", "0.5",
    )  # fmt: skip
    run = summary["run"]
    assert run["backend_args"]["base_url"] == [server.openai_url, server.openai_url.replace("127.0.0.1", "localhost")]
    assert run["backend_args"]["extra_body"] == {"top_k": 20, "stop": ["END", "STOP"]}
    assert run["backend_args"]["timeout_s"] == 30 and run["backend_args"]["api_key_env"] == "MY_KEY"
    assert run["backend_identity"]["extra_body"] == '{"stop":["END","STOP"],"top_k":20}'
    assert run["served_models"] == ["ckpt-served"] and run["system_fingerprints"] == ["fp_0.5"]
    assert run["judge"] == "keywords" and run["judge_key"].startswith("judge:")
    assert run["benchmark_hash"].startswith("bench:") and run["overrefusal_version"]
    folder = next((tmp_path / "runs").iterdir())
    for name in ("summary.json", "responses.jsonl", "verdicts.jsonl", "report.html"):
        assert "sk-secret" not in (folder / name).read_text()
    # a changed benchmark changes its hash
    other = tmp_path / "other"
    other.mkdir()
    path = write_bench(other)
    path.write_text(path.read_text().replace("benign 3", "benign three"))
    result = CliRunner().invoke(
        cli,
        ["run", "--no-progress", "--json", "--base-url", server.openai_url, "-m", "ckpt", "-j", "keywords",
         "-b", str(path), "-o", str(tmp_path / "runs")],
    )  # fmt: skip
    assert json.loads(result.stdout)["run"]["benchmark_hash"] != run["benchmark_hash"]


def test_judge_args_and_weights_are_recorded_and_report_warns(tmp_path: Path, server: ScriptedServer) -> None:
    pytest.importorskip("plotly")
    pytest.importorskip("scipy")
    bench = str(write_bench(tmp_path))
    common = ["run", "--no-progress", "--base-url", server.openai_url, "-b", bench, "-o", str(tmp_path / "runs")]
    runner = CliRunner()
    assert runner.invoke(cli, [*common, "-m", "ckpt", "-j", "keywords"]).exit_code == 0
    vote = [*common, "-m", "other", "-j", "vote", "-J", "members=keywords,keywords", "-J", "rule=any"]
    assert runner.invoke(cli, vote).exit_code == 0
    folders = sorted((tmp_path / "runs").iterdir())
    voted = json.loads(next(f for f in folders if f.name.endswith("other")).joinpath("summary.json").read_text())
    assert voted["run"]["judge_args"] == {"members": "keywords,keywords", "rule": "any"}
    assert voted["run"]["judge_config"]["rule"] == "any" and len(voted["run"]["judge_config"]["members"]) == 2
    result = runner.invoke(cli, ["report", *map(str, folders), "-o", str(tmp_path / "cmp.html")])
    assert result.exit_code == 0, result.output
    assert "warning: The runs were judged differently (keywords v" in result.stderr
    page = (tmp_path / "cmp.html").read_text()
    assert "vote v1" in result.stderr and "judged differently" in page
    assert "<th>provider<br>refusals</th>" in page
