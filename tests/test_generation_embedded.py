"""Integration: the whole generation chain on the real embedded model (tiny sizes), then a cached re-run.

The tiny model is a poor generator and moderator: the chain must either yield a non-empty benign
set or fail loudly (exit 1) naming the stage and the check that tripped, never export garbage.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from overrefusal.cli import cli

pytest.importorskip("xllamacpp")
pytestmark = pytest.mark.embedded


def test_generate_all_with_the_embedded_model(tmp_path: Path) -> None:
    model = {"backend": "embedded", "args": {"model": "qwen"}}
    config = {
        "project": "tiny",
        "categories": ["illegal"],
        "generator": model,
        "seeds": {"per_category": 1, "batch_size": 2, "max_calls_per_category": 2, "max_tokens": 64},
        "rewrite": {"per_seed": 2, "max_tokens": 200, "retries": 1},
        "moderate": {"moderators": [model], "max_tokens": 96, "parse_retries": 1},
        "hard": {"panel": [model], "min_refusals": 1, "size": 2, "toxic_size": 2, "max_tokens": 24},
        "export": {"output_dir": "out", "formats": ["csv"]},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    args = ["generate", "all", "--config", str(path), "--no-progress"]
    first = CliRunner().invoke(cli, args)
    sheet = json.loads((tmp_path / "out" / "datasheet.json").read_text())
    seeds_usage = sheet["stages"]["seeds"]["usage"]
    assert seeds_usage["requests_sent"] >= 1 and seeds_usage["completion_tokens"] > 0
    assert sheet["stages"]["seeds"]["models"]["generator"]["model"] == "qwen2.5-coder-0.5b-instruct"
    if first.exit_code != 0:
        # a small model may degenerate: then the run fails loudly, naming the stage and the check that tripped
        assert first.exit_code == 1, first.output
        last = first.output.strip().splitlines()[-1]
        assert last.startswith("error: the ") and "stage failed its checks: " in last, first.output
        stage = last.removeprefix("error: the ").split(" stage")[0]
        assert sheet["status"] == f"failed at the {stage} stage"
        assert any(not c["ok"] for c in sheet["checks"][stage]), sheet["checks"]
        assert "  FAILED " in first.output
        assert not (tmp_path / "out" / "tiny-benign.csv").exists()
        again = CliRunner().invoke(cli, args)  # resumable: the rerun sends nothing and fails the same way
        assert again.exit_code == 1 and again.output.strip().splitlines()[-1] == last
        assert all(" 0 requests sent" in line for line in again.output.splitlines() if "requests sent" in line)
        return
    # every stage had something to work on, and the benign set is not empty
    counts = sheet["counts"]
    candidates = sum(counts["candidates"].values())
    assert candidates >= 1, counts
    moderated = sum(sum(counts[k].values()) for k in ("moderated_benign", "moderated_toxic", "moderated_undecided"))
    assert moderated == candidates, counts
    assert sheet["stages"]["moderate"]["usage"]["requests_sent"] >= candidates
    with (tmp_path / "out" / "tiny-benign.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and all(r["category"] == "illegal" and r["prompt"] for r in rows)
    assert sum(sheet["counts"]["export_benign"].values()) == len(rows)
    assert sheet["status"] == "complete"

    second = CliRunner().invoke(cli, args)
    assert second.exit_code == 0, second.output
    summaries = [line for line in second.output.splitlines() if "requests sent" in line]
    assert len(summaries) == 6 and all(line.split(": ")[1].startswith("0 requests sent") for line in summaries)
