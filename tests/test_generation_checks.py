"""Sanity checks: scripted backends that degenerate in each way fail their stage with its message, exit 1."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import gen_fakes
from overrefusal.cli import cli
from overrefusal.generation.copies import EXAMPLE_TEXTS, template_copy
from overrefusal.generation.parsing import normalise, parse_items
from overrefusal.generation.records_store import GenerationStore
from overrefusal.store import Store
from test_generation_pipeline import spec, write_config


@pytest.fixture(autouse=True)
def _scripted() -> Iterator[None]:
    from overrefusal.backends import backends

    with backends.temporarily("scripted", gen_fakes.scripted):
        yield


def generate(path: Path, command: str = "all") -> Result:
    return CliRunner().invoke(cli, ["generate", command, "--config", str(path), "--no-progress"])


def failed(result: Result, stage: str, check: str, *phrases: str) -> str:
    """The run failed at ``stage`` on ``check``: exit 1, the FAILED line, and the error as the last line."""
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith(f"error: the {stage} stage failed its checks: "), lines[-1]
    failed_line = next(line for line in lines if line.strip().startswith(f"FAILED {check}:"))
    for phrase in phrases:
        assert phrase in failed_line, failed_line
    stages_run = [line.split(":")[0] for line in lines if not line.startswith((" ", "error"))]
    assert stages_run[-1] == stage  # nothing ran after the failed stage
    return failed_line


def sheet(folder: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((folder / "out" / "datasheet.json").read_text())
    return data


def test_constant_label_moderator_fails_the_moderate_stage(tmp_path: Path) -> None:
    path = write_config(tmp_path, moderate={"moderators": [spec("mod-constant")]})
    result = generate(path)
    line = failed(result, "moderate", "constant_label", "80 of 80 prompts", "(toxic: hate)", "mod-constant")
    assert "threshold 95%" in line
    assert not (tmp_path / "out" / "demo-benign.csv").exists()  # nothing exported as a benchmark
    data = sheet(tmp_path)
    assert data["status"] == "failed at the moderate stage"
    assert any(c["name"] == "constant_label" and not c["ok"] for c in data["checks"]["moderate"])
    assert "dedup" not in data["stages"]
    assert "**FAILED**" in (tmp_path / "out" / "datasheet.md").read_text()
    # the next stage refuses to run on a failed stage's records
    after = generate(path, "dedup")
    assert after.exit_code == 1 and "the moderate stage failed its checks" in after.output
    # running it again costs nothing (every call is cached) and fails the same way
    again = generate(path, "moderate")
    assert again.exit_code == 1 and "moderate: 0 requests sent" in again.output


def test_warn_only_reports_and_goes_on(tmp_path: Path) -> None:
    path = write_config(tmp_path, moderate={"moderators": [spec("mod-constant")]}, checks={"action": "warn"})
    result = generate(path)
    # everything is toxic: moderate, then dedup have nothing benign; the warnings say so, the chain goes on
    assert "WARNING constant_label:" in result.output
    assert "WARNING benign_set: no benign prompt left to export" in result.output
    assert result.exit_code == 0, result.output
    assert sheet(tmp_path)["status"] == "complete"


def test_moderator_echoing_the_template_example_tag(tmp_path: Path) -> None:
    path = write_config(tmp_path, moderate={"moderators": [spec("mod-echo")], "parse_retries": 0})
    result = generate(path)
    failed(result, "moderate", "template_echo", "80 of 80 outputs", "[[number. category name]]")
    assert "FAILED parse_failures: 80 of 80 outputs of moderator 1 (mod-echo) have no readable tag" in result.output
    records = GenerationStore(Store(), "demo").load("moderation")
    assert {r["final"] for r in records} == {"undecided"}  # an echo is never read as a vote


def test_generator_echoing_the_placeholders(tmp_path: Path) -> None:
    result = generate(write_config(tmp_path, generator=spec("gen-echo")))
    failed(result, "seeds", "template_echo", "items echo the template's placeholders")
    assert "FAILED yield: seeds empty or tiny in illegal 0 of 8, privacy 0 of 8" in result.output
    assert GenerationStore(Store(), "demo").load("seed") == []  # the placeholders were never kept


@pytest.mark.parametrize("model", ["gen-empty", "gen-tiny"])
def test_empty_or_tiny_generator_output(tmp_path: Path, model: str) -> None:
    result = generate(write_config(tmp_path, generator=spec(model)))
    failed(result, "seeds", "parse_failures", "12 of 12 generator calls gave no readable item")
    assert "FAILED yield: seeds empty or tiny in illegal 0 of 8" in result.output


def test_copied_few_shot_examples_are_removed_and_fail_the_rewrite_stage(tmp_path: Path) -> None:
    result = generate(write_config(tmp_path, generator=spec("gen-copy")))
    failed(result, "rewrite", "copied_examples", "80 of 80 rewrites copy the template's few-shot examples")
    assert GenerationStore(Store(), "demo").load("candidate") == []
    funnel = sheet(tmp_path)["funnel"]["rewrite"]["illegal"]
    assert funnel == {"in": 40, "kept": 0, "dropped": {"copied_example": 40}}


def test_copied_examples_are_removed_even_when_the_stage_passes(tmp_path: Path, store: Store) -> None:
    from overrefusal.generation import load_config, run_stage

    path = write_config(tmp_path, generator=spec("gen-copy-one"), checks={"copied_examples": 0.5})
    config = load_config(path)
    run_stage("seeds", config, store=store, progress=False)
    report = run_stage("rewrite", config, store=store, progress=False)
    assert report["status"] == "ok" and report["total"] == 16 * 4
    assert report["funnel"]["illegal"]["dropped"] == {"copied_example": 8}
    examples = {normalise(t) for t in EXAMPLE_TEXTS}
    assert not [c for c in GenerationStore(store, "demo").load("candidate") if normalise(c["text"]) in examples]


def test_benign_pool_judged_toxic_on_the_second_pass(tmp_path: Path) -> None:
    path = write_config(tmp_path, moderate={"moderators": [spec("mod-habit")]})
    result = generate(path)
    line = failed(result, "moderate", "second_pass", "40 of 40 benign prompts were called toxic")
    assert "labels by habit" in line
    flagged = sheet(tmp_path)["checks"]["moderate"]
    assert [c["name"] for c in flagged if not c["ok"]] == ["second_pass"]


def test_panel_with_empty_answers_fails_the_hard_stage(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        hard={"panel": [spec("panel-empty"), spec("panel-1")], "min_refusals": 1, "size": 4, "toxic_size": 2},
    )
    result = generate(path)
    failed(result, "hard", "parse_failures", "answers of panel model 1:panel-empty failed or were empty")


def test_template_copy_detection() -> None:
    assert template_copy("First new request") == "echo"
    assert template_copy(EXAMPLE_TEXTS[1]) == "copied_example"
    assert template_copy(EXAMPLE_TEXTS[3] + " Thanks a lot.") == "copied_example"
    assert template_copy("How do I get back into my own car when the keys are locked inside?") is None
    assert template_copy("How do locks work?") is None


def test_stray_brackets_are_stripped() -> None:
    assert parse_items("[[1. [Exploit the kettle timer for tea]]").items == ("Exploit the kettle timer for tea",)
    assert parse_items("[1. Exploit the kettle timer]]").items == ("Exploit the kettle timer",)
