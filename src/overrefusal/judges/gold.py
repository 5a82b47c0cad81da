"""Human-labelled responses ("gold" files) for measuring and training judges.

Recognised as given:

* XSTest completions (``prompt``, ``completion``, ``final_label`` with ``1_full_compliance`` /
  ``2_full_refusal`` / ``3_partial_refusal``);
* WildGuardTest (``response_refusal_label`` refusal/compliance: binary, rows without a label skipped);
* OpenAI's RBR gold set (JSONL with ``propositions``): ``fully_complies`` is compliance,
  ``partially_complies`` a partial refusal, anything else (inability, deflection) a full refusal;
* MSTS (``final_taxonomy`` or ``annot1_label``): 1.2 "refusal only" is a refusal and 2.x
  (encouragement, advice) compliance, binary; the other classes mix refusals with safe direct
  answers and are skipped.

Other layouts are read through column names and a label mapping.
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
    """Labelled responses: ``items[i]`` carries ``labels[i]``; ``groups[i]`` names its source (e.g. model).

    ``binary[i]`` is True where the source only says refusal or compliance: its refusals are
    stored as ``full_refusal`` but say nothing about full vs partial.
    """

    items: tuple[JudgeItem, ...]
    labels: tuple[GoldLabel, ...]
    groups: tuple[str, ...]
    binary: tuple[bool, ...] = ()

    def __post_init__(self) -> None:
        if not self.binary:
            object.__setattr__(self, "binary", tuple(False for _ in self.items))

    def __len__(self) -> int:
        return len(self.items)

    @property
    def three_class(self) -> bool:
        """Whether any label distinguishes full from partial refusals."""
        return not all(self.binary)

    def subset(self, rows: Sequence[int]) -> GoldSet:
        """The items at ``rows``, in that order."""
        return GoldSet(
            tuple(self.items[i] for i in rows),
            tuple(self.labels[i] for i in rows),
            tuple(self.groups[i] for i in rows),
            tuple(self.binary[i] for i in rows),
        )

    def renamed(self, group: str) -> GoldSet:
        """The same set with every item in ``group``."""
        return GoldSet(self.items, self.labels, tuple(group for _ in self.items), self.binary)

    @classmethod
    def concat(cls, sets: Sequence[GoldSet]) -> GoldSet:
        """Join several sets."""
        return cls(
            items=tuple(i for s in sets for i in s.items),
            labels=tuple(lab for s in sets for lab in s.labels),
            groups=tuple(g for s in sets for g in s.groups),
            binary=tuple(b for s in sets for b in s.binary),
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
    layout = _known_layout(columns)
    if layout is not None and label_column is None and not label_map:
        return _load_layout(path, rows, layout)
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
        items.append(_item(path, number, str(row.get(p_col) or ""), str(row.get(r_col) or ""), row.get("id")))
        labels.append(label)
    return GoldSet(items=tuple(items), labels=tuple(labels), groups=tuple(path.stem for _ in items))


def _item(path: Path, number: int, prompt: str, text: str, row_id: object = None) -> JudgeItem:
    key = content_hash({"gold": str(path.name), "row": number, "prompt": prompt, "text": text}, prefix="gold")
    response = Response(key=key, prompt_id=str(row_id or number), model=path.stem, text=text)
    return JudgeItem(prompt=prompt, response=response)


def _known_layout(columns: Sequence[str]) -> str | None:
    names = set(columns)
    if "response_refusal_label" in names and "response" in names:
        return "wildguardtest"
    if {"propositions", "completion", "prompt"} <= names:
        return "rbr"
    if "response" in names and "prompt_text" in names and names & {"final_taxonomy", "annot1_label"}:
        return "msts"
    return None


def _text(value: object) -> str:
    """A chat turn list (``[{"role": ..., "content": ...}]``) as its last content; anything else as text."""
    if isinstance(value, list):
        turns = [t for t in value if isinstance(t, dict)]
        return str(turns[-1].get("content") or "") if turns else ""
    return "" if value is None else str(value)


def _last_user_turn(value: object) -> str:
    if isinstance(value, list):
        users = [t for t in value if isinstance(t, dict) and t.get("role") == "user"]
        return str(users[-1].get("content") or "") if users else _text(value)
    return _text(value)


def _load_layout(path: Path, rows: Sequence[dict[str, object]], layout: str) -> GoldSet:
    items: list[JudgeItem] = []
    labels: list[GoldLabel] = []
    binary: list[bool] = []
    for number, row in enumerate(rows, start=2):
        label: GoldLabel | None
        if layout == "wildguardtest":
            raw = str(row.get("response_refusal_label") or "").strip().lower()
            label = "full_refusal" if raw == "refusal" else "compliance" if raw == "compliance" else None
            prompt, text, is_binary = _text(row.get("prompt")), _text(row.get("response")), True
        elif layout == "rbr":
            props = row.get("propositions")
            if not isinstance(props, dict):
                raise BadInputError(f"{path} row {number}: 'propositions' is not an object of booleans")
            label = (
                "compliance"
                if props.get("fully_complies")
                else "partial_refusal"
                if props.get("partially_complies")
                else "full_refusal"
            )
            prompt, text, is_binary = _last_user_turn(row.get("prompt")), _text(row.get("completion")), False
        else:
            taxonomy = str(row.get("final_taxonomy") or row.get("annot1_label") or "").strip()
            label = "full_refusal" if taxonomy.startswith("1.2") else "compliance" if taxonomy[:2] == "2." else None
            prompt, text, is_binary = _text(row.get("prompt_text")), _text(row.get("response")), True
        if label is None:
            continue
        items.append(_item(path, number, prompt, text, row.get("id") or row.get("case_id")))
        labels.append(label)
        binary.append(is_binary)
    if not items:
        raise BadInputError(f"{path} has no labelled responses this tool can read ({layout} layout)")
    return GoldSet(
        items=tuple(items), labels=tuple(labels), groups=tuple(path.stem for _ in items), binary=tuple(binary)
    )


PUBLIC_SOURCES: dict[str, tuple[str, ...]] = {
    "xstest-gpt4": ("xstest/completions/xstest_v2_completions_gpt4.csv",),
    "xstest-llama2": ("xstest/completions/xstest_v2_completions_llama2new.csv",),
    "xstest-mistral": ("xstest/completions/xstest_v2_completions_mistralinstruct.csv",),
    "wildguardtest": ("wildguardtest/wildguardtest.parquet",),
    "rbr": ("rbr-gold/train.jsonl", "rbr-gold/test.jsonl"),
    "msts-en": ("msts/english_multimodal.csv", "msts/english_textonly.csv"),
    "msts-xx": tuple(
        f"msts/{lang}_multimodal.csv"
        for lang in ("arabic", "chinese", "farsi", "french", "german")
        + ("hindi", "italian", "korean", "russian", "spanish")
    ),
}
"""Human-labelled sources for leave-one-source-out validation, by name: files relative to a data folder
holding the public releases (XSTest, WildGuardTest, RBR gold, MSTS; see the README's Judges section)."""


def load_sources(folder: str | Path, names: Sequence[str] | None = None) -> dict[str, GoldSet]:
    """Load :data:`PUBLIC_SOURCES` (or ``names`` of them) from ``folder``, each as one group."""
    folder = Path(folder)
    out: dict[str, GoldSet] = {}
    for name in names or list(PUBLIC_SOURCES):
        if name not in PUBLIC_SOURCES:
            raise BadInputError(f"unknown source {name!r}: sources are {', '.join(PUBLIC_SOURCES)}")
        missing = [f for f in PUBLIC_SOURCES[name] if not (folder / f).is_file()]
        if missing:
            raise BadInputError(f"{folder / missing[0]} is missing: point --data at the folder holding {name}")
        out[name] = GoldSet.concat([load_gold(folder / f) for f in PUBLIC_SOURCES[name]]).renamed(name)
    return out
