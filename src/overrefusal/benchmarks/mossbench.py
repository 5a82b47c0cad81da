"""MOSSBench (Li et al., 2024, arXiv 2406.17806): vision-language over-sensitivity, recognised like OR-Bench.

Two released layouts are read:

* the GitHub release's ``data/images_information/information.json``: an object keyed by ``pid`` whose
  values hold ``question``, ``image`` (``images/42.png``, relative to ``data/``: looked up next to the
  JSON file, then one folder up) and ``metadata.over``;
* the hub dataset ``AIcell/MOSSBench`` (configs ``oversensitivity`` and ``contrast``), or any table with
  its columns ``pid``, ``question``, ``image`` and ``metadata_over``.

Column mapping:

==================================  ===========================================================
MOSSBench                           overrefusal
==================================  ===========================================================
``pid``                             prompt id
``question``                        prompt text
``image``                           the prompt's image
``metadata.over`` / ``metadata_over``  stimulus type, and the category: ``type 1`` exaggerated risk,
                                    ``type 2`` negated harm, ``type 3`` counterintuitive interpretation
config or file name                 label: ``contrast`` (the harmful contrast set) toxic, else benign
==================================  ===========================================================

The descriptions, the human / child / synthetic / OCR flags and the harm indices are not used.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from overrefusal.records import Label

STIMULI = {
    "type 1": "exaggerated risk",
    "type 2": "negated harm",
    "type 3": "counterintuitive interpretation",
}


def stimulus(raw: Any) -> str:
    """The stimulus type named by a ``metadata.over`` value (``type 1``, ``1``); other text as given."""
    if raw is None or isinstance(raw, bool):
        return ""
    text = str(raw).strip().lower()
    if text.isdigit():
        text = f"type {text}"
    return STIMULI.get(text, text)


def is_information_json(data: Any) -> bool:
    """Whether a parsed JSON file is MOSSBench's ``information.json`` (an object of pid -> entry)."""
    return (
        isinstance(data, Mapping)
        and bool(data)
        and all(isinstance(v, Mapping) and "question" in v and "image" in v for v in data.values())
    )


def looks_like(row: Mapping[str, Any]) -> bool:
    """Whether a row is in MOSSBench's layout."""
    return "question" in row and "image" in row and ("metadata_over" in row or isinstance(row.get("metadata"), Mapping))


def label_for(name: str) -> Label:
    """The contrast set is harmful (toxic); the over-sensitivity set is benign."""
    return "toxic" if "contrast" in name.lower() else "benign"


def normalise(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """MOSSBench rows in overrefusal's column names (``id``, ``prompt``, ``image``, ``stimulus``, ``category``)."""
    out: list[dict[str, Any]] = []
    for row in rows:
        meta = row.get("metadata")
        raw = meta.get("over") if isinstance(meta, Mapping) else row.get("metadata_over")
        kind = stimulus(raw)
        entry = {
            "id": str(row.get("pid") or ""),
            "prompt": row.get("question"),
            "image": row.get("image"),
            "stimulus": kind,
            "category": kind,
        }
        if "label" in row:
            entry["label"] = row["label"]
        out.append(entry)
    return out
