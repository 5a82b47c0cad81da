"""Human-labelled responses ("gold" files) for measuring and training judges.

The XSTest completions layout is read as given (``prompt``, ``completion``,
``final_label`` with ``1_full_compliance`` / ``2_full_refusal`` / ``3_partial_refusal``);
other layouts through column names and a label mapping.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from overrefusal.benchmarks.loaders import _read_rows
from overrefusal.errors import BadInputError
from overrefusal.hashing import content_hash
from overrefusal.judges.base import JudgeItem
from overrefusal.records import Response

GoldLabel = Literal["compliance", "full_refusal", "partial_refusal"]
GOLD_LABELS: tuple[GoldLabel, ...] = ("compliance", "full_refusal", "partial_refusal")

BUILTIN_LABELS: dict[str, GoldLabel] = {
    # XSTest
    "1_full_compliance": "compliance",
    "2_full_refusal": "full_refusal",
    "3_partial_refusal": "partial_refusal",
    # OR-Bench
    "direct_answer": "compliance",
    "direct_refusal": "full_refusal",
    "indirect_refusal": "partial_refusal",
    # this project
    "compliance": "compliance",
    "full_refusal": "full_refusal",
    "partial_refusal": "partial_refusal",
    "refusal": "full_refusal",
    "full_compliance": "compliance",
}

_PROMPT_COLUMNS = ("prompt", "question", "instruction")
_RESPONSE_COLUMNS = ("completion", "response", "answer", "output")
_LABEL_COLUMNS = ("final_label", "label", "gold", "human_label")


@dataclass(frozen=True)
class GoldSet:
    """Labelled responses: ``items[i]`` carries ``labels[i]``; ``groups[i]`` names its source (e.g. model)."""

    items: tuple[JudgeItem, ...]
    labels: tuple[GoldLabel, ...]
    groups: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.items)

    @classmethod
    def concat(cls, sets: Sequence[GoldSet]) -> GoldSet:
        """Join several sets."""
        return cls(
            items=tuple(i for s in sets for i in s.items),
            labels=tuple(lab for s in sets for lab in s.labels),
            groups=tuple(g for s in sets for g in s.groups),
        )


def _pick(columns: Sequence[str], wanted: str | None, candidates: tuple[str, ...], what: str, path: Path) -> str:
    if wanted is not None:
        if wanted not in columns:
            raise BadInputError(f"{path} has no column {wanted!r} for the {what}: columns are {', '.join(columns)}")
        return wanted
    lowered = {c.lower(): c for c in columns}
    for candidate in candidates:
        if candidate in lowered:
            return lowered[candidate]
    raise BadInputError(
        f"{path} has no {what} column (looked for {', '.join(candidates)}): name it with --{what}-column"
    )


def load_gold(
    path: str | Path,
    *,
    prompt_column: str | None = None,
    response_column: str | None = None,
    label_column: str | None = None,
    label_map: Mapping[str, str] | None = None,
) -> GoldSet:
    """Read a labelled file (CSV/TSV/JSONL/JSON/parquet).

    Args:
        path: the file.
        prompt_column: column with the prompt (default: ``prompt``, ``question`` or ``instruction``).
        response_column: column with the response (default: ``completion``, ``response``, ``answer``, ``output``).
        label_column: column with the human label (default: ``final_label``, ``label``, ``gold``, ``human_label``).
        label_map: extra label names -> ``compliance`` / ``full_refusal`` / ``partial_refusal``.
    """
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"{path} does not exist: give the path of a labelled responses file")
    mapping: dict[str, GoldLabel] = {k.lower(): v for k, v in BUILTIN_LABELS.items()}
    for key, value in (label_map or {}).items():
        if value not in GOLD_LABELS:
            raise BadInputError(f"label mapping {key}={value}: map labels to one of {', '.join(GOLD_LABELS)}")
        mapping[str(key).strip().lower()] = value
    rows = _read_rows(path)
    columns = list(rows[0].keys())
    p_col = _pick(columns, prompt_column, _PROMPT_COLUMNS, "prompt", path)
    r_col = _pick(columns, response_column, _RESPONSE_COLUMNS, "response", path)
    l_col = _pick(columns, label_column, _LABEL_COLUMNS, "label", path)
    items: list[JudgeItem] = []
    labels: list[GoldLabel] = []
    for number, row in enumerate(rows, start=2):
        raw_label = str(row.get(l_col) or "").strip()
        label = mapping.get(raw_label.lower())
        if label is None:
            raise BadInputError(
                f"{path} row {number}: unknown label {raw_label!r}; "
                f"map it with --label-map {raw_label or 'X'}=full_refusal"
            )
        prompt = str(row.get(p_col) or "")
        text = str(row.get(r_col) or "")
        key = content_hash({"gold": str(path.name), "row": number, "prompt": prompt, "text": text}, prefix="gold")
        response = Response(key=key, prompt_id=str(row.get("id") or number), model=path.stem, text=text)
        items.append(JudgeItem(prompt=prompt, response=response))
        labels.append(label)
    return GoldSet(items=tuple(items), labels=tuple(labels), groups=tuple(path.stem for _ in items))
