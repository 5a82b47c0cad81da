"""The whole generation chain with scripted backends, the CLI, resume after SIGKILL."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

import gen_fakes
from overrefusal.cli import cli
from overrefusal.generation import load_config, run_all, run_stage
from overrefusal.generation.records_store import GenerationStore
from overrefusal.store import Store

HERE = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def _scripted() -> Iterator[None]:
    from overrefusal.backends import backends

    with backends.temporarily("scripted", gen_fakes.scripted):
        yield


def spec(model: str, **extra: Any) -> dict[str, Any]:
    return {"backend": "scripted", "args": {"model": model, **extra}}


def write_config(folder: Path, delay_s: float = 0.0, **overrides: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    extra = {"delay_s": delay_s} if delay_s else {}
    config: dict[str, Any] = {
        "project": "demo",
        "categories": ["illegal", "privacy"],
        "generator": spec("gen", **extra),
        "seeds": {"per_category": 8, "batch_size": 4, "max_calls_per_category": 6},
        "rewrite": {"per_seed": 5},
        "moderate": {
            "moderators": [spec("mod-strict", **extra), spec("mod-lenient", **extra)],
            "vote": "majority",
            "second_chance": {"answerer": spec("answerer", **extra)},
        },
        "dedup": {"threshold": 0.97},
        "hard": {
            "panel": [spec("panel-1", **extra), spec("panel-2", **extra), spec("panel-3", **extra)],
            "min_refusals": 2,
            "size": 10,
            "toxic_size": 4,
            "seed": 1,
        },
        "export": {"output_dir": "out", "formats": ["csv", "jsonl", "parquet"]},
    }
    config.update(overrides)
    path = folder / "project.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_whole_chain_with_scripted_backends(tmp_path: Path, store: Store) -> None:
    config = load_config(write_config(tmp_path))
    reports = run_all(config, store=store, progress=False)
    records = GenerationStore(store, "demo")

    seeds = records.load("seed")
    # 8 per category: attempt 0 gives 4, attempt 1 is junk, attempt 2 overlaps attempt 0 by one -> top-up rounds
    assert reports["seeds"]["counts"] == {"illegal": 8, "privacy": 8}
    assert len({s["text"] for s in seeds}) == 16
    assert reports["seeds"]["per_category"]["illegal"]["unparsed"] == 1
    assert reports["seeds"]["per_category"]["illegal"]["duplicates"] >= 1

    candidates = records.load("candidate")
    assert len(candidates) == 16 * 5
    assert all(c["category"] == next(s["category"] for s in seeds if s["id"] == c["seed_id"]) for c in candidates)

    moderation = {m["text"]: m for m in records.load("moderation")}
    quietly = next(m for t, m in moderation.items() if t.startswith("Quietly"))
    sneak = next(m for t, m in moderation.items() if t.startswith("Sneak"))
    plain = next(m for t, m in moderation.items() if t.startswith("What is"))
    assert (quietly["first_decision"], quietly["final"]) == ("toxic", "toxic")  # answer moderated unsafe
    assert (sneak["first_decision"], sneak["final"]) == ("toxic", "benign")  # 1-1 tie is toxic; answer restores
    assert sneak["second_chance"]["restored"] is True
    assert (plain["first_decision"], plain["final"]) == ("benign", "benign")
    assert reports["moderate"]["totals"] == {"benign": 64, "toxic": 16, "undecided": 0}
    assert reports["moderate"]["restored"] == 16

    dedup = records.load("dedup")
    assert {d["pool"] for d in dedup} == {"benign", "toxic"}
    kept_benign = [d for d in dedup if d["kept"] and d["pool"] == "benign"]
    assert 0 < len(kept_benign) <= 64
    diversity = reports["dedup"]["diversity"]
    assert set(diversity) == {"illegal", "privacy"}
    assert 0 < diversity["illegal"]["distinct_2"] <= 1
    assert 0 <= diversity["illegal"]["self_bleu"] <= 1

    hard = records.load("hard")
    assert all(h["hard"] == (h["refusals"] >= 2) for h in hard)
    selected = [h for h in hard if h["selected"]]
    assert len(selected) == min(10, sum(h["hard"] for h in hard))
    assert all(h["hard"] for h in selected)
    per_category = [sum(h["category"] == c for h in selected) for c in ("illegal", "privacy")]
    assert abs(per_category[0] - per_category[1]) <= 1

    out = tmp_path / "out"
    benign_rows = read_csv(out / "demo-benign.csv")
    assert list(benign_rows[0]) == ["prompt", "category"]
    assert [r["prompt"] for r in benign_rows] == [d["text"] for d in kept_benign]
    assert len(read_csv(out / "demo-hard.csv")) == len(selected)
    assert len(read_csv(out / "demo-toxic.csv")) == 4
    jsonl = [json.loads(line) for line in (out / "demo-hard.jsonl").read_text().splitlines()]
    assert jsonl == read_csv(out / "demo-hard.csv")
    import pyarrow.parquet as pq

    assert pq.read_table(out / "demo-benign.parquet").to_pylist() == benign_rows
    sheet = json.loads((out / "datasheet.json").read_text())
    assert sheet["counts"]["seeds"] == {"illegal": 8, "privacy": 8}
    assert sheet["stages"]["rewrite"]["prompt_version"] == "rewrite-v2"
    assert sheet["status"] == "complete"
    assert all(c["ok"] for checks in sheet["checks"].values() for c in checks), sheet["checks"]
    assert {c["name"] for c in sheet["checks"]["moderate"]} >= {"constant_label", "template_echo", "second_pass"}
    # the strict moderator's second pass flags the 16 restored "Sneak" prompts; the lenient one does not: a tie
    assert reports["moderate"]["second_pass"]["sample"] == 40
    assert 0 < reports["moderate"]["second_pass"]["toxic"] < 40
    funnel = sheet["funnel"]
    assert funnel["moderate"]["illegal"] == {"in": 40, "kept": 32, "dropped": {"toxic": 8}}
    assert funnel["rewrite"]["illegal"]["in"] == 40 and funnel["rewrite"]["illegal"]["kept"] == 40
    assert funnel["dedup"]["illegal"]["kept"] == sum(d["category"] == "illegal" for d in kept_benign)
    assert sheet["stages"]["seeds"]["usage"]["requests_sent"] == reports["seeds"]["usage"]["requests_sent"] > 0
    assert sheet["stages"]["moderate"]["models"]["moderator_1"]["model"] == "mod-strict"
    markdown = (out / "datasheet.md").read_text()
    assert "| illegal |" in markdown and "Self-BLEU" in markdown
    assert not list(out.glob(".*"))  # no temporary files left
    assert {p.stat().st_mode & 0o777 for p in out.iterdir() if p.is_file()} == {0o644}  # readable by others

    # a second run answers everything from the cache and produces the same records
    again = run_all(config, store=store, progress=False)
    for name in ("seeds", "rewrite", "moderate", "hard"):
        assert again[name]["usage"]["requests_sent"] == 0, name
        assert (
            again[name]["usage"]["responses_cached"]
            == reports[name]["usage"]["responses_cached"] + reports[name]["usage"]["requests_sent"]
        )
    assert read_csv(out / "demo-benign.csv") == benign_rows


def test_tokens_are_recorded_per_stage(tmp_path: Path, store: Store) -> None:
    config = load_config(write_config(tmp_path))
    report = run_stage("seeds", config, store=store, progress=False)
    usage = report["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["sent_prompt_tokens"] == usage["prompt_tokens"]
    assert GenerationStore(store, "demo").stage("seeds") == report


def test_projects_are_separate(tmp_path: Path, store: Store) -> None:
    one = load_config(write_config(tmp_path / "a"))
    two = load_config(write_config(tmp_path / "b", project="other", categories=["illegal"]))
    run_stage("seeds", one, store=store, progress=False)
    report = run_stage("seeds", two, store=store, progress=False)
    assert report["usage"]["requests_sent"] == 0  # same queries: answered from the cache
    assert len(GenerationStore(store, "demo").load("seed")) == 16
    assert len(GenerationStore(store, "other").load("seed")) == 8


def test_cli_stage_by_stage_and_errors(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    runner = CliRunner()
    for stage in ("rewrite", "export"):  # a later stage on a fresh project: nothing to read
        early = runner.invoke(cli, ["generate", stage, "--config", str(path), "--no-progress"])
        assert early.exit_code == 2 and early.output.count("\n") == 1, early.output
        assert "no finished" in early.output and "generate" in early.output
    assert not (tmp_path / "out").exists()
    for stage in ("seeds", "rewrite", "moderate", "dedup", "hard", "export"):
        result = runner.invoke(cli, ["generate", stage, "--config", str(path), "--no-progress"])
        assert result.exit_code == 0, result.output
        assert result.output.startswith(f"{stage}: ")
    assert (tmp_path / "out" / "demo-hard.csv").exists()

    bad = tmp_path / "bad.yaml"
    bad.write_text("project: demo\ngenerator: {backend: scripted}\nmoderate: {moderators: [], vote: most}\n")
    result = runner.invoke(cli, ["generate", "seeds", "--config", str(bad)])
    assert result.exit_code == 2
    assert result.output.startswith("error: ") and len(result.output.strip().splitlines()) == 1
    assert "moderate.moderators" in result.output

    unknown = write_config(tmp_path / "u", categories=["gardening"])
    result = runner.invoke(cli, ["generate", "seeds", "--config", str(unknown)])
    assert result.exit_code == 2 and "unknown category 'gardening'" in result.output

    missing = runner.invoke(cli, ["generate", "all", "--config", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2 and "does not exist" in missing.output


def _run_cli(home: Path, config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OVERREFUSAL_HOME": str(home), "GEN_CALL_LOG": str(log)}
    with (log.parent / f"{log.stem}.stderr").open("ab") as err:
        return subprocess.Popen(
            [sys.executable, str(HERE / "gen_fakes.py"), "generate", "all", "--config", str(config), "--no-progress"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )


def _finish(proc: subprocess.Popen[bytes], log: Path) -> None:
    assert proc.wait(timeout=120) == 0, (log.parent / f"{log.stem}.stderr").read_text()


def _calls(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


@pytest.mark.slow
def test_killed_generate_all_resumes_without_repeating_calls(tmp_path: Path) -> None:
    # reference: one uninterrupted run
    ref_log = tmp_path / "ref.log"
    ref_config = write_config(tmp_path / "ref", delay_s=0.02)
    _finish(_run_cli(tmp_path / "ref-home", ref_config, ref_log), ref_log)
    full = len(_calls(ref_log))

    log = tmp_path / "calls.log"
    config = write_config(tmp_path / "kill", delay_s=0.02)
    proc = _run_cli(tmp_path / "home", config, log)
    deadline = time.monotonic() + 120
    # kill in the middle of the moderation stage (after seeds + rewrite calls, before its end)
    while len(_calls(log)) < full // 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = len(_calls(log))
    assert 0 < before < full, "the run must be killed mid-way"
    with Store(tmp_path / "home" / "store.sqlite3") as store:
        stored, _ = store.count_responses()
    # requests sent but not committed at the kill: those in flight plus answers that arrived in the last few ms
    # (the runner's ResponseCommitter groups commits within 5 ms), at most one round more; the two moderators
    # (concurrency 4 each) work at the same time
    in_flight = before - stored
    assert 0 <= in_flight <= 2 * (2 * 4)

    _finish(_run_cli(tmp_path / "home", config, log), log)
    total = len(_calls(log))
    assert total <= full + in_flight
    assert total >= full
    assert len(set(_calls(log))) == full  # every distinct call was made, none twice except in-flight ones
    for name in ("demo-benign.csv", "demo-hard.csv", "demo-toxic.csv"):
        assert (tmp_path / "kill" / "out" / name).read_text() == (tmp_path / "ref" / "out" / name).read_text()


def test_exclusion_set_and_save_to_disk(tmp_path: Path, store: Store) -> None:
    excluded = "What is the long history behind kitchen knives (illegal)?"
    (tmp_path / "ex").mkdir()
    (tmp_path / "ex" / "public.csv").write_text(f"prompt,category\n{excluded},illegal\n", encoding="utf-8")
    path = write_config(
        tmp_path / "ex",
        dedup={"threshold": 0.97, "exclude": [{"path": "public.csv"}]},
        export={"output_dir": "out", "formats": ["csv"], "save_to_disk": True},
    )
    config = load_config(path)
    for stage in ("seeds", "rewrite", "moderate", "dedup", "hard"):
        run_stage(stage, config, store=store, progress=False)
    dedup = {d["text"]: d for d in GenerationStore(store, "demo").load("dedup")}
    assert dedup[excluded]["reason"] == "excluded" and not dedup[excluded]["kept"]
    try:
        import datasets
    except ImportError:
        from overrefusal.errors import MissingDependencyError

        with pytest.raises(MissingDependencyError, match=r"overrefusal\[hub\]"):
            run_stage("export", config, store=store, progress=False)
        return
    run_stage("export", config, store=store, progress=False)
    saved = datasets.load_from_disk(str(tmp_path / "ex" / "out" / "hf" / "hard"))
    assert saved["train"].column_names == ["prompt", "category"]
    assert saved["train"]["prompt"] == [r["prompt"] for r in read_csv(tmp_path / "ex" / "out" / "demo-hard.csv")]
