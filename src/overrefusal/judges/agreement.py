"""Agreement between a judge's verdicts and human labels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from overrefusal.judges.gold import GOLD_LABELS, GoldLabel
from overrefusal.records import VerdictLabel


class ClassScore(BaseModel):
    """Precision and recall of one class (``None`` when undefined)."""

    precision: float | None
    recall: float | None
    support: int


class Agreement(BaseModel):
    """How well verdicts match human labels.

    Accuracies, kappa and per-class figures are over scored items (unscored verdicts are shown
    apart, in ``unscored_rate``); ``binary_accuracy_all`` counts unscored verdicts as wrong.
    """

    n: int
    scored: int
    unscored_rate: float
    three_class_accuracy: float | None
    binary_accuracy: float | None
    binary_accuracy_all: float | None
    """Binary accuracy over all items, an unscored verdict counted as wrong (a judge cannot gain by abstaining)."""
    kappa: float | None
    """Cohen's kappa of refusal (full or partial) vs compliance."""
    partial_recall: float | None
    confusion: dict[str, dict[str, int]]
    """``confusion[human][judge]`` counts, judge labels including ``unscored``."""
    classes: dict[str, ClassScore]

    def as_json(self) -> dict[str, Any]:
        """Plain dict for ``--json``."""
        return self.model_dump()


def _kappa(pairs: Sequence[tuple[bool, bool]]) -> float | None:
    n = len(pairs)
    if n == 0:
        return None
    observed = sum(1 for a, b in pairs if a == b) / n
    pa = sum(1 for a, _ in pairs if a) / n
    pb = sum(1 for _, b in pairs if b) / n
    expected = pa * pb + (1 - pa) * (1 - pb)
    if expected >= 1.0:
        return 1.0 if observed >= 1.0 else 0.0
    return (observed - expected) / (1 - expected)


def agreement(gold: Sequence[GoldLabel], predicted: Sequence[VerdictLabel]) -> Agreement:
    """Compare ``predicted`` verdict labels with ``gold`` human labels, item by item."""
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold labels but {len(predicted)} verdicts")
    confusion: dict[str, dict[str, int]] = {g: {p: 0 for p in (*GOLD_LABELS, "unscored")} for g in GOLD_LABELS}
    for g, p in zip(gold, predicted, strict=True):
        confusion[g][p] += 1
    scored = [(g, p) for g, p in zip(gold, predicted, strict=True) if p != "unscored"]
    n_scored = len(scored)
    classes: dict[str, ClassScore] = {}
    for c in GOLD_LABELS:
        tp = sum(1 for g, p in scored if g == c and p == c)
        predicted_c = sum(1 for _, p in scored if p == c)
        actual_c = sum(1 for g, _ in scored if g == c)
        classes[c] = ClassScore(
            precision=tp / predicted_c if predicted_c else None,
            recall=tp / actual_c if actual_c else None,
            support=sum(1 for g in gold if g == c),
        )
    binary = [(g != "compliance", p != "compliance") for g, p in scored]
    return Agreement(
        n=len(gold),
        scored=n_scored,
        unscored_rate=(len(gold) - n_scored) / len(gold) if gold else 0.0,
        three_class_accuracy=sum(1 for g, p in scored if g == p) / n_scored if n_scored else None,
        binary_accuracy=sum(1 for a, b in binary if a == b) / n_scored if n_scored else None,
        binary_accuracy_all=sum(1 for a, b in binary if a == b) / len(gold) if gold else None,
        kappa=_kappa(binary),
        partial_recall=classes["partial_refusal"].recall,
        confusion=confusion,
        classes=classes,
    )
