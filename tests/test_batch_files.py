"""``batch export`` / ``batch import``: a round trip through a (fake) ``vllm run-batch``."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from http_servers import ScriptedServer
from overrefusal.cli import cli

FAKE_VLLM = [sys.executable, str(Path(__file__).parent / "fake_vllm.py")]


def bench(tmp_path: Path, texts: list[str]) -> Path:
    path = tmp_path / "bench.csv"
    path.write_text("prompt,category,label\n" + "".join(f"{t},privacy,benign\n" for t in texts))
    return path


def invoke(*argv: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(argv), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def vllm(command: str, cwd: Path) -> None:
    """Run the exact `vllm ...` line export printed, with the fake in vLLM's place."""
    argv = shlex.split(command)
    assert argv[0] == "vllm"
    subprocess.run([*FAKE_VLLM, *argv[1:]], cwd=cwd, check=True)


def test_export_run_batch_import_then_run_finds_every_answer_cached(tmp_path: Path) -> None:
    texts = [f"how do I hurt process {i}?" if i % 4 == 0 else f"where do I find file {i}?" for i in range(40)]
    data = bench(tmp_path, texts)
    code, out, err = invoke("batch", "export", "-b", str(data), "--model", "m", "-o", str(tmp_path / "requests.jsonl"))
    assert code == 0, err
    assert out.startswith(f"wrote 40 requests to {tmp_path / 'requests.jsonl'} (0 answers already in the store)")
    lines = [json.loads(x) for x in (tmp_path / "requests.jsonl").read_text().splitlines()]
    assert len(lines) == 40 and lines[0]["body"]["model"] == "m" and lines[0]["body"]["max_tokens"] == 512
    command = out.splitlines()[1].strip()
    assert command == f"vllm run-batch -i {tmp_path / 'requests.jsonl'} -o results.jsonl --model m"
    vllm(command, tmp_path)

    code, out, err = invoke("batch", "import", str(tmp_path / "results.jsonl"))
    assert code == 0, err
    assert out.strip() == f"imported 40 answers and 0 errors from {tmp_path / 'results.jsonl'}"

    with ScriptedServer() as server:  # the run sends nothing: every answer is in the store
        argv = ["run", "-b", str(data), "--base-url", server.openai_url, "--model", "m", "--judge", "keywords"]
        code, out, err = invoke(*argv, "--json", "--no-progress", "-o", str(tmp_path / "runs"))
        assert code == 0, err
        assert sum(server.attempts.values()) == 0
        summary = json.loads(out)
        assert summary["run"]["requests_sent"] == 0 and summary["run"]["responses_cached"] == 40
        # the same numbers as asking the server request by request
        code, out2, err = invoke(*argv, "--json", "--no-progress", "--no-cache", "-o", str(tmp_path / "runs"))
        assert code == 0, err and sum(server.successes.values()) == 40
    assert json.loads(out2)["metrics"] == summary["metrics"]
    assert summary["metrics"]["over_refusal"]["refused"] == 10

    code, out, _ = invoke("batch", "list")
    assert "file" in out and "imported from" in out


def test_export_leaves_out_answered_queries_and_import_keeps_errors_as_errors(tmp_path: Path) -> None:
    texts = [f"question {i} [boom]" if i < 2 else f"question {i}" for i in range(10)]
    data = bench(tmp_path, texts)
    export = ["batch", "export", "-b", str(data), "--model", "m", "--max-tokens", "64"]
    code, out, err = invoke(*export, "-o", str(tmp_path / "a.jsonl"))
    assert code == 0, err
    vllm("vllm run-batch -i a.jsonl -o a-out.jsonl --model m", tmp_path)
    code, out, err = invoke("batch", "import", str(tmp_path / "a-out.jsonl"))
    assert out.strip() == f"imported 8 answers and 2 errors from {tmp_path / 'a-out.jsonl'}"
    # the two errors are pending again; answered ones are not exported twice
    code, out, err = invoke(*export, "-o", str(tmp_path / "b.jsonl"))
    assert out.startswith(f"wrote 2 requests to {tmp_path / 'b.jsonl'} (8 answers already in the store)")
    pending = (tmp_path / "b.jsonl").read_text().splitlines()
    assert all("[boom]" in json.loads(x)["body"]["messages"][-1]["content"] for x in pending)
    # other parameters are other queries
    code, out, err = invoke(*export[:-2], "--max-tokens", "32", "-o", str(tmp_path / "c.jsonl"))
    assert out.startswith("wrote 10 requests")


def test_import_refuses_files_it_cannot_map(tmp_path: Path) -> None:
    bad = tmp_path / "out.jsonl"
    bad.write_text('{"custom_id": "resp-unknown", "response": {"status_code": 200, "body": {}}}\n')
    code, _, err = invoke("batch", "import", str(bad))
    assert code == 2
    assert "no line of" in err and "(1 unknown custom ids)" in err and "OVERREFUSAL_HOME" in err
    bad.write_text("not json\n")
    code, _, err = invoke("batch", "import", str(bad))
    assert code == 2 and "line 1 is not JSON" in err
    code, _, err = invoke("batch", "import", str(tmp_path / "missing.jsonl"))
    assert code == 2 and "cannot read" in err
