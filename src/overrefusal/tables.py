"""Writing rows of strings as JSONL, parquet or a ``datasets`` folder, atomically: the one table writer."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from overrefusal.atomic import write_atomic
from overrefusal.errors import MissingDependencyError

Row = dict[str, str]


def write_jsonl(path: Path, rows: Sequence[Row]) -> None:
    """One JSON object per line."""
    write_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def write_parquet(path: Path, rows: Sequence[Row], columns: Sequence[str]) -> None:
    """A parquet file with string ``columns`` (needs pyarrow)."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise MissingDependencyError("parquet export", "parquet", ["pyarrow"]) from exc

    def write(tmp: Path) -> None:
        table = pa.table({c: pa.array([r[c] for r in rows], type=pa.string()) for c in columns})
        pq.write_table(table, tmp)

    write_atomic(path, write)


def save_dataset(folder: Path, rows: Sequence[Row], columns: Sequence[str], card: str | None = None) -> None:
    """A ``datasets.DatasetDict({"train": ...})`` saved with ``save_to_disk``, its card as README.md (needs datasets).

    The folder is built aside and moved into place, replacing an older one only once complete.
    """
    try:
        import datasets
    except ImportError as exc:
        raise MissingDependencyError("datasets export", "hub", ["datasets"]) from exc
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        features = datasets.Features({c: datasets.Value("string") for c in columns})
        data = {c: [r[c] for r in rows] for c in columns}
        datasets.DatasetDict({"train": datasets.Dataset.from_dict(data, features=features)}).save_to_disk(
            str(tmp / "data")
        )
        for item in (tmp / "data").iterdir():
            item.rename(tmp / item.name)
        (tmp / "data").rmdir()
        if card is not None:
            (tmp / "README.md").write_text(card, encoding="utf-8")
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
