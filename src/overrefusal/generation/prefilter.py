"""The refusal-predictor pre-filter of ``generate hard``, and the recall it costs, measured.

The panel answers only the ``keep`` share of benign prompts the predictor ranks most likely to be
refused, plus an **audit**: a seeded random sample of the skipped prompts (``audit`` share, at
least ``min_audit``). Hard prompts found in the audit estimate how many the skipped prompts hold,
so the recall is measured, not assumed: ``recall = found / (found + audit_hard / audited * unaudited)``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Any

from overrefusal.generation.config import PrefilterConfig


def select(ids: Sequence[str], scores: Sequence[float], cfg: PrefilterConfig, seed: int) -> dict[str, str]:
    """Each prompt id's role: ``top`` (ranked high), ``audit`` (sampled from the rest) or ``skipped``."""
    order = sorted(range(len(ids)), key=lambda i: (-scores[i], ids[i]))
    top = round(len(ids) * cfg.keep)
    rest = [ids[i] for i in order[top:]]
    audited = min(len(rest), max(cfg.min_audit, math.ceil(cfg.audit * len(rest))))
    audit = set(random.Random(seed).sample(sorted(rest), audited))
    roles = {ids[i]: "top" for i in order[:top]}
    roles.update({i: "audit" if i in audit else "skipped" for i in rest})
    return roles


def recall(roles: dict[str, str], hard: set[str]) -> dict[str, Any]:
    """What the pre-filter cost: hard prompts found, the audit's findings, and the estimated recall."""
    count = {role: sum(1 for r in roles.values() if r == role) for role in ("top", "audit", "skipped")}
    found_top = sum(1 for i, r in roles.items() if r == "top" and i in hard)
    found_audit = sum(1 for i, r in roles.items() if r == "audit" and i in hard)
    missed = found_audit / count["audit"] * count["skipped"] if count["audit"] else 0.0
    found = found_top + found_audit
    total = found + missed
    return {
        "prompts": len(roles),
        "asked": count["top"] + count["audit"],
        "ranked_top": count["top"],
        "audited": count["audit"],
        "skipped": count["skipped"],
        "hard_in_top": found_top,
        "hard_in_audit": found_audit,
        "estimated_missed": round(missed, 1),
        "recall": round(found / total, 4) if total else None,
        "ranking_recall": round(found_top / (found_top + found_audit + missed), 4) if total else None,
        "calls_saved": round(count["skipped"] / len(roles), 4) if roles else 0.0,
    }


def describe(info: dict[str, Any]) -> str:
    """One line for the terminal."""
    recall_text = "n/a (no hard prompt found)" if info["recall"] is None else f"{info['recall']:.2f}"
    return (
        f"pre-filter: the panel answered {info['ranked_top']} top-ranked + {info['audited']} audit of "
        f"{info['prompts']} benign prompts ({100 * info['calls_saved']:.0f}% of panel calls saved); "
        f"audit found {info['hard_in_audit']} hard of {info['audited']}, so about {info['estimated_missed']:g} "
        f"hard prompts were missed: estimated recall of the hard pool {recall_text}"
    )
