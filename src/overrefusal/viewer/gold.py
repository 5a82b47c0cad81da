"""Human relabels saved as a gold file in the XSTest completions layout, rewritten atomically."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from overrefusal.errors import BadInputError
from overrefusal.report.compare import write_atomic

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

    @property
    def key(self) -> str:
        """Identity of the labelled response: its response key, else (model, prompt id)."""
        return self.response_key or f"{self.model}\x00{self.id}"


class GoldFile:
    """The gold file's rows in memory, in file order; :meth:`set` rewrites the whole file atomically."""

    def __init__(self, path: Path) -> None:
        """Read ``path`` when it exists (rows of other runs are kept as they are)."""
        self.path = path
        self.rows: dict[str, GoldRow] = {}
        if path.exists():
            self._read()

    def _read(self) -> None:
        try:
            with self.path.open(encoding="utf-8", newline="") as handle:
                reader = csv.DictReader(handle)
                missing = {"id", "prompt", "completion", "final_label"} - set(reader.fieldnames or ())
                if missing:
                    raise BadInputError(
                        f"gold file {self.path} lacks columns {sorted(missing)}: give a file in the XSTest "
                        "completions layout (id,type,prompt,completion,final_label) or a new path"
                    )
                for line in reader:
                    row = GoldRow(**{c: line.get(c) or "" for c in COLUMNS})
                    self.rows[row.key] = row
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise BadInputError(f"cannot read gold file {self.path}: {exc}; give a UTF-8 CSV or a new path") from exc

    def get(self, key: str) -> GoldRow | None:
        """The label of a response key, if any."""
        return self.rows.get(key)

    def set(self, row: GoldRow) -> None:
        """Add or replace a label and rewrite the file (temporary file + ``os.replace``)."""
        if row.final_label not in GOLD_LABELS:
            raise BadInputError(f"final_label {row.final_label!r} is not one of {', '.join(GOLD_LABELS)}")
        self.rows[row.key] = row
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(COLUMNS)
        for r in self.rows.values():
            writer.writerow([r.id, r.type, r.prompt, r.completion, r.final_label, r.model, r.response_key])
        write_atomic(self.path, buffer.getvalue())
