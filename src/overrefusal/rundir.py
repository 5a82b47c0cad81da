"""Writing a run folder atomically: it appears complete or not at all."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from overrefusal.metrics import Outcome
from overrefusal.report.single import render_run_report
from overrefusal.summary import Summary

RESPONSES = "responses.jsonl"
VERDICTS = "verdicts.jsonl"
SUMMARY = "summary.json"
REPORT = "report.html"


def response_rows(outcomes: Sequence[Outcome]) -> list[dict[str, object]]:
    """One JSON-able row per prompt: the prompt and its response (or null)."""
    rows: list[dict[str, object]] = []
    for o in outcomes:
        row: dict[str, object] = {"prompt": o.prompt.model_dump()}
        row["response"] = o.response.model_dump(exclude={"cached"}) if o.response is not None else None
        rows.append(row)
    return rows


def write_run_dir(parent: Path, run_id: str, summary: Summary, outcomes: Sequence[Outcome]) -> Path:
    """Write ``parent/run_id/`` with responses, verdicts, summary and report; return its path."""
    parent.mkdir(parents=True, exist_ok=True)
    final = parent / run_id
    suffix = 1
    while final.exists():
        suffix += 1
        final = parent / f"{run_id}-{suffix}"
    tmp = Path(tempfile.mkdtemp(prefix=f".{run_id}.", dir=parent))
    try:
        with (tmp / RESPONSES).open("w", encoding="utf-8") as handle:
            for row in response_rows(outcomes):
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        with (tmp / VERDICTS).open("w", encoding="utf-8") as handle:
            for o in outcomes:
                if o.verdict is not None:
                    handle.write(o.verdict.model_dump_json() + "\n")
        (tmp / SUMMARY).write_text(summary.model_dump_json(indent=2) + "\n", encoding="utf-8")
        (tmp / REPORT).write_text(render_run_report(summary, outcomes), encoding="utf-8")
        tmp.chmod(0o755)
        tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final
