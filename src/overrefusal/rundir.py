"""Writing a run folder atomically: it appears complete or not at all.

The folder is written under a hidden name that holds the writer's process id
(``.<id>.partial-<pid>-<random>``) and renamed into place. A writer killed half-way (``kill -9``)
leaves that hidden folder behind; the next write in the same parent removes every such folder
whose process is gone. Two runs finishing at the same second under the same name both succeed:
the second gets the next free suffix (``-2``, ``-3``, ...).
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from overrefusal.images import FILE_NAME
from overrefusal.metrics import Outcome
from overrefusal.pids import alive
from overrefusal.report.single import render_run_report
from overrefusal.summary import Summary

IMAGES = "images"
"""The run folder's images: prompts' and generated ones, named ``<sha256>.<ext>``."""
IMAGE_POOL = ".images"
"""Beside the run folders: generated images by content hash, kept as they arrive so that a resumed or
cached run still has them (the store keeps only their hashes)."""
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


_PARTIAL = re.compile(r"^\..+\.partial-(\d+)-[A-Za-z0-9_]+$")


def sweep_partial(parent: Path) -> list[Path]:
    """Remove the hidden folders of writers that died half-way through; return what was removed."""
    removed: list[Path] = []
    try:
        entries = list(parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = _PARTIAL.match(entry.name)
        if match and int(match.group(1)) != os.getpid() and not alive(int(match.group(1))) and entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def _place(tmp: Path, parent: Path, run_id: str) -> Path:
    """Rename ``tmp`` to ``parent/run_id`` or, when taken (even by a concurrent run), to the next free suffix."""
    suffix = 1
    while True:
        final = parent / (run_id if suffix == 1 else f"{run_id}-{suffix}")
        if not final.exists():
            try:
                tmp.rename(final)  # fails when another writer's complete folder took the name meanwhile
                return final
            except OSError as exc:
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
        suffix += 1


def _copy_images(folder: Path, outcomes: Sequence[Outcome], pool: Path) -> None:
    """Put the prompts' images (from memory) and the generated ones (from ``pool``) in ``folder``."""
    for outcome in outcomes:
        for image in (outcome.prompt.image, outcome.response.image if outcome.response is not None else None):
            if image is None or not FILE_NAME.match(image.file_name):
                continue
            target = folder / image.file_name
            if target.exists():
                continue
            folder.mkdir(exist_ok=True)
            if image.data:
                target.write_bytes(image.data)
            elif (pool / image.file_name).is_file():
                shutil.copyfile(pool / image.file_name, target)


def write_run_dir(parent: Path, run_id: str, summary: Summary, outcomes: Sequence[Outcome]) -> Path:
    """Write ``parent/run_id/`` with responses, verdicts, summary, report and images; return its path."""
    parent.mkdir(parents=True, exist_ok=True)
    sweep_partial(parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{run_id}.partial-{os.getpid()}-", dir=parent))
    try:
        with (tmp / RESPONSES).open("w", encoding="utf-8") as handle:
            for row in response_rows(outcomes):
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
        with (tmp / VERDICTS).open("w", encoding="utf-8") as handle:
            for o in outcomes:
                if o.verdict is not None:
                    handle.write(o.verdict.model_dump_json() + "\n")
        (tmp / SUMMARY).write_text(summary.model_dump_json(indent=2) + "\n", encoding="utf-8")
        _copy_images(tmp / IMAGES, outcomes, parent / IMAGE_POOL)
        (tmp / REPORT).write_text(render_run_report(summary, outcomes, tmp / IMAGES), encoding="utf-8")
        tmp.chmod(0o755)
        return _place(tmp, parent, run_id)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
