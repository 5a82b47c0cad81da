"""Reading run folders written by :func:`overrefusal.rundir.write_run_dir`, streaming their jsonl files."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

from pydantic import ValidationError

from overrefusal.errors import BadInputError
from overrefusal.records import Prompt, Response, Verdict, VerdictLabel
from overrefusal.rundir import RESPONSES, SUMMARY, VERDICTS
from overrefusal.summary import FORMAT_VERSION, Summary

VERDICT_LABELS = frozenset(get_args(VerdictLabel))


@dataclass(frozen=True)
class RunFolder:
    """A validated run folder: its path and parsed ``summary.json``."""

    path: Path
    summary: Summary

    @property
    def model(self) -> str:
        """The model under test."""
        return self.summary.run.model

    @property
    def benchmark(self) -> str:
        """The benchmark's name."""
        return self.summary.run.benchmark

    @property
    def responses_path(self) -> Path:
        """``responses.jsonl``."""
        return self.path / RESPONSES

    @property
    def verdicts_path(self) -> Path:
        """``verdicts.jsonl`` (may be absent when nothing was judged)."""
        return self.path / VERDICTS


def load_run(path: str | Path) -> RunFolder:
    """Validate a run folder and parse its summary; :class:`BadInputError` (one line) when it is not one."""
    folder = Path(path)
    if not folder.is_dir():
        raise BadInputError(f"{folder} is not a folder: give a run folder written by `overrefusal run` (runs/<id>/)")
    summary_file = folder / SUMMARY
    if not summary_file.is_file():
        raise BadInputError(f"{folder} is not a run folder (no {SUMMARY}): give a folder written by `overrefusal run`")
    if not (folder / RESPONSES).is_file():
        raise BadInputError(f"{folder} has no {RESPONSES}: the run folder is incomplete, run it again")
    try:
        raw = json.loads(summary_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadInputError(f"cannot read {summary_file}: {exc}; run it again to rewrite the folder") from exc
    version = raw.get("format_version") if isinstance(raw, dict) else None
    if version != FORMAT_VERSION:
        raise BadInputError(
            f"{summary_file} has format_version {version!r}, this overrefusal reads {FORMAT_VERSION}: "
            "use the overrefusal version that wrote it"
        )
    try:
        summary = Summary.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise BadInputError(f"{summary_file} is invalid at {where}: {first['msg']}; run it again") from exc
    return RunFolder(path=folder.resolve(), summary=summary)


def load_runs(paths: list[str] | list[Path]) -> list[RunFolder]:
    """Load several run folders; the same folder given twice is an error."""
    runs = [load_run(p) for p in paths]
    seen: set[Path] = set()
    for run in runs:
        if run.path in seen:
            raise BadInputError(f"run folder {run.path} is given twice: give each run once")
        seen.add(run.path)
    return runs


def _json_lines(path: Path) -> Iterator[tuple[int, int, dict[str, Any]]]:
    """Yield (line number, byte offset, object) for each non-empty line."""
    offset = 0
    try:
        with path.open("rb") as handle:
            for number, line in enumerate(handle, start=1):
                start = offset
                offset += len(line)
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                    raise BadInputError(f"{path}:{number} is not valid JSON ({exc}); run it again") from exc
                if not isinstance(obj, dict):
                    raise BadInputError(f"{path}:{number} is not a JSON object; run it again")
                yield number, start, obj
    except OSError as exc:
        raise BadInputError(f"cannot read {path}: {exc}") from exc


@dataclass(frozen=True)
class ResponseRow:
    """One line of ``responses.jsonl``: the prompt and its response (None when it never got one)."""

    prompt: Prompt
    response: Response | None
    offset: int
    """Byte offset of the line, to read it again on demand (:func:`read_row_at`)."""


def _parse_row(path: Path, number: int, obj: dict[str, Any], offset: int) -> ResponseRow:
    try:
        prompt = Prompt.model_validate(obj["prompt"])
        raw = obj.get("response")
        response = None if raw is None else Response.model_validate(raw)
    except (KeyError, ValidationError) as exc:
        raise BadInputError(f"{path}:{number} is not a response row ({exc.__class__.__name__}); run it again") from exc
    return ResponseRow(prompt=prompt, response=response, offset=offset)


def iter_responses(run: RunFolder) -> Iterator[ResponseRow]:
    """Stream the rows of ``responses.jsonl``."""
    for number, offset, obj in _json_lines(run.responses_path):
        yield _parse_row(run.responses_path, number, obj, offset)


def iter_response_dicts(run: RunFolder) -> Iterator[tuple[int, dict[str, Any]]]:
    """Stream (byte offset, raw row) without validation: for aggregating many rows fast."""
    for _number, offset, obj in _json_lines(run.responses_path):
        yield offset, obj


def read_row_at(run: RunFolder, offset: int) -> ResponseRow:
    """Read the ``responses.jsonl`` row starting at ``offset`` (from :class:`ResponseRow` or the dict stream)."""
    with run.responses_path.open("rb") as handle:
        handle.seek(offset)
        line = handle.readline()
    try:
        obj = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadInputError(f"{run.responses_path} changed while reading it: {exc}") from exc
    return _parse_row(run.responses_path, 0, obj, offset)


def iter_verdicts(run: RunFolder) -> Iterator[Verdict]:
    """Stream the verdicts of a run (nothing when ``verdicts.jsonl`` is absent)."""
    if not run.verdicts_path.is_file():
        return
    for number, _offset, obj in _json_lines(run.verdicts_path):
        try:
            yield Verdict.model_validate(obj)
        except ValidationError as exc:
            raise BadInputError(f"{run.verdicts_path}:{number} is not a verdict; run it again") from exc


def verdict_labels(run: RunFolder) -> dict[str, tuple[str, str]]:
    """Map response key to (verdict label, judge) without full validation (fast path for large runs)."""
    out: dict[str, tuple[str, str]] = {}
    if not run.verdicts_path.is_file():
        return out
    for number, _offset, obj in _json_lines(run.verdicts_path):
        key, label, judge = obj.get("response_key"), obj.get("label"), obj.get("judge")
        if not isinstance(key, str) or label not in VERDICT_LABELS:
            raise BadInputError(f"{run.verdicts_path}:{number} is not a verdict; run it again")
        out[key] = (str(label), str(judge))
    return out
