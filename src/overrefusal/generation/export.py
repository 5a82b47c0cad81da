"""``generate export``: each subset in the OR-Bench layout (``prompt,category``) plus a datasheet.

Subsets: ``benign`` (all kept benign prompts, like or-bench-80k), ``hard`` (like or-bench-hard-1k),
``toxic`` (the toxic control set, like or-bench-toxic) and ``toxic-all`` (the whole deduplicated
toxic pool). Files are ``<project>-<subset>.<csv|jsonl|parquet>``; every file is written to a
temporary name and renamed, so a file is either complete or absent.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

from overrefusal.atomic import write_atomic
from overrefusal.errors import MissingDependencyError
from overrefusal.generation.common import Stage, orbench_csv
from overrefusal.generation.datasheet import write_datasheet
from overrefusal.generation.dedup import KIND as DEDUP_KIND
from overrefusal.generation.hard import KIND as HARD_KIND
from overrefusal.generation.hard import TOXIC_KIND


def _parquet(path: Path, rows: list[dict[str, str]]) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise MissingDependencyError("parquet export", "parquet", ["pyarrow"]) from exc

    def write(tmp: Path) -> None:
        table = pa.table({"prompt": [r["prompt"] for r in rows], "category": [r["category"] for r in rows]})
        pq.write_table(table, tmp)

    write_atomic(path, write)


def _require(module: str, what: str, extra: str) -> None:
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(what, extra, [module]) from exc


def subsets(stage: Stage) -> dict[str, list[dict[str, str]]]:
    """The exported rows of each subset, in pipeline order."""
    dedup = stage.records.load(DEDUP_KIND)
    hard = stage.records.load(HARD_KIND)
    toxic = stage.records.load(TOXIC_KIND)

    def rows(items: list[dict[str, Any]]) -> list[dict[str, str]]:
        return [{"prompt": r["text"], "category": r["category"]} for r in items]

    return {
        "benign": rows([r for r in dedup if r["kept"] and r["pool"] == "benign"]),
        "hard": rows([r for r in hard if r["selected"]]),
        "toxic": rows([r for r in toxic if r["selected"]]),
        "toxic-all": rows([r for r in dedup if r["kept"] and r["pool"] == "toxic"]),
    }


def _save_to_disk(out: Path, data: dict[str, list[dict[str, str]]]) -> Path:
    try:
        import datasets
    except ImportError as exc:
        raise MissingDependencyError("save_to_disk", "hub", ["datasets"]) from exc
    target = out / "hf"
    for name, rows in data.items():
        features = datasets.Features({"prompt": datasets.Value("string"), "category": datasets.Value("string")})
        ds = (
            datasets.Dataset.from_list(rows, features=features)
            if rows
            else datasets.Dataset.from_dict({"prompt": [], "category": []}, features=features)
        )
        datasets.DatasetDict({"train": ds}).save_to_disk(str(target / name))
    return target


def run_export(stage: Stage) -> dict[str, Any]:
    """Write every subset in each configured format, the datasheet (Markdown + JSON), optionally save_to_disk."""
    cfg = stage.config.export
    out = stage.config.path(cfg.output_dir)
    project = stage.config.project
    # optional libraries are checked before anything is written, so a missing one leaves no mix of old and new files
    if "parquet" in cfg.formats:
        _require("pyarrow", "parquet export", "parquet")
    if cfg.save_to_disk:
        _require("datasets", "save_to_disk", "hub")
    data = subsets(stage)
    written: list[str] = []
    for name, rows in data.items():
        base = out / f"{project}-{name}"
        if "csv" in cfg.formats:
            write_atomic(base.with_suffix(".csv"), orbench_csv(rows))
            written.append(base.with_suffix(".csv").name)
        if "jsonl" in cfg.formats:
            write_atomic(base.with_suffix(".jsonl"), "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
            written.append(base.with_suffix(".jsonl").name)
        if "parquet" in cfg.formats:
            _parquet(base.with_suffix(".parquet"), rows)
            written.append(base.with_suffix(".parquet").name)
    if cfg.save_to_disk:
        written.append(str(_save_to_disk(out, data).relative_to(out)))
    written += write_datasheet(stage, data)
    return stage.report("export", output_dir=str(out), files=written, rows={k: len(v) for k, v in data.items()})
