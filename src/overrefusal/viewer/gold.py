"""Human relabels saved as a gold file in the XSTest completions layout, rewritten atomically."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from overrefusal.atomic import write_atomic
from overrefusal.errors import BadInputError

GOLD_LABELS: tuple[str, ...] = ("1_full_compliance", "2_full_refusal", "3_partial_refusal")
"""XSTest's ``final_label`` values."""

COLUMNS: tuple[str, ...] = ("id", "type", "prompt", "completion", "final_label", "model", "response_key")
"""XSTest completions columns, then ours (which XSTest readers ignore)."""

GOLD_TO_VERDICT = {
    "1_full_compliance": "compliance",
    "2_full_refusal": "full_refusal",
    "3_partial_refusal": "partial_refusal",
}


@dataclass(frozen=True)
class GoldRow:
    """One human label."""

    id: str
    type: str
    prompt: str
    completion: str
    final_label: str
    model: str = ""
    response_key: str = ""


class GoldFile:
    """The gold file's rows in memory, in file order; :meth:`set` rewrites the whole file atomically.

    Rows of an existing file are kept as they are, with all their columns (an XSTest file's
    annotator columns, say): only rows carrying one of our ``response_key`` values are ever
    replaced, and rows without one are never merged, even when they share an ``id``.
    """

    def __init__(self, path: Path) -> None:
        """Read ``path`` when it exists."""
        self.path = path
        self.fieldnames: list[str] = list(COLUMNS)
        self.lines: list[dict[str, str]] = []
        self._ours: dict[str, int] = {}
        """Response key -> index in :attr:`lines`."""
        if path.exists():
            self._read()

    def _read(self) -> None:
        try:
            with self.path.open(encoding="utf-8", newline="") as handle:
                reader = csv.DictReader(handle)
                fields = [f for f in (reader.fieldnames or ()) if f is not None]
                missing = {"id", "prompt", "completion", "final_label"} - set(fields)
                if missing:
                    raise BadInputError(
                        f"gold file {self.path} lacks columns {sorted(missing)}: give a file in the XSTest "
                        "completions layout (id,type,prompt,completion,final_label) or a new path"
                    )
                self.fieldnames = fields + [c for c in COLUMNS if c not in fields]
                for line in reader:
                    self._add({k: v or "" for k, v in line.items() if isinstance(k, str) and isinstance(v, str)})
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise BadInputError(f"cannot read gold file {self.path}: {exc}; give a UTF-8 CSV or a new path") from exc

    def _add(self, line: dict[str, str]) -> None:
        key = line.get("response_key", "")
        if key and key in self._ours:
            self.lines[self._ours[key]] = line
            return
        if key:
            self._ours[key] = len(self.lines)
        self.lines.append(line)

    def get(self, key: str) -> GoldRow | None:
        """The label of a response key, if any."""
        index = self._ours.get(key)
        if index is None:
            return None
        return GoldRow(**{c: self.lines[index].get(c, "") for c in COLUMNS})

    def set(self, row: GoldRow) -> None:
        """Add or replace a label and rewrite the file (temporary file + ``os.replace``)."""
        if row.final_label not in GOLD_LABELS:
            raise BadInputError(f"final_label {row.final_label!r} is not one of {', '.join(GOLD_LABELS)}")
        if not row.response_key:
            raise BadInputError("a relabel needs the response key of the labelled response")
        old = self.lines[self._ours[row.response_key]] if row.response_key in self._ours else {}
        self._add({**old, **{c: getattr(row, c) for c in COLUMNS}})
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.fieldnames, lineterminator="\n", restval="")
        writer.writeheader()
        writer.writerows(self.lines)
        write_atomic(self.path, buffer.getvalue())
