"""Train the classifier judge on labelled responses (scikit-learn, ``train`` extra)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from overrefusal.errors import BadInputError, MissingDependencyError
from overrefusal.judges.classifier import CLASSES, ClassifierModel, builtin_phrases
from overrefusal.judges.gold import GoldSet

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

DEFAULT_C = 1.0
"""Inverse L2 strength, chosen by leave-one-model-out cross-validation on XSTest (see README)."""
DEFAULT_PARTIAL_BOOST = 3.0
"""Among refusals, call partial when 3 * p(partial) > p(full): partial refusals are rare and under-predicted."""


@dataclass(frozen=True)
class TrainSet:
    """A gold set and the weight of each of its items in the loss."""

    gold: GoldSet
    weight: float = 1.0


def train(
    sets: Sequence[TrainSet],
    *,
    c: float = DEFAULT_C,
    partial_boost: float = DEFAULT_PARTIAL_BOOST,
    meta: dict[str, object] | None = None,
) -> ClassifierModel:
    """Fit a class-balanced multinomial logistic regression on the features of ``sets``."""
    prompts = [i.prompt for s in sets for i in s.gold.items]
    texts = [i.response.text for s in sets for i in s.gold.items]
    labels = [lab for s in sets for lab in s.gold.labels]
    weights = [s.weight for s in sets for _ in s.gold.items]
    if len(set(labels)) < 2:
        raise BadInputError("training needs responses of at least two labels (compliance and a refusal kind)")
    x = feature_matrix(prompts, texts)
    return fit(x, labels, weights, c=c, partial_boost=partial_boost, meta=meta)


def feature_matrix(prompts: Sequence[str], texts: Sequence[str]) -> npt.NDArray[np.float32]:
    """Features of (prompt, response) pairs as the built-in model computes them."""
    import numpy as np

    empty = ClassifierModel(
        coef=np.zeros((len(CLASSES), 0), dtype=np.float32),
        intercept=np.zeros(len(CLASSES), dtype=np.float32),
        vocabulary={},
        phrases=builtin_phrases(),
        meta={},
    )
    return empty.features(prompts, texts)


def fit(
    x: npt.NDArray[np.float32],
    labels: Sequence[str],
    weights: Sequence[float],
    *,
    c: float = DEFAULT_C,
    partial_boost: float = DEFAULT_PARTIAL_BOOST,
    meta: dict[str, object] | None = None,
) -> ClassifierModel:
    """Fit a class-balanced multinomial logistic regression on a feature matrix."""
    try:
        import numpy as np
        from sklearn.linear_model import LogisticRegression
    except ImportError as exc:
        raise MissingDependencyError("training the classifier judge", "train", ["scikit-learn"]) from exc
    present = sorted(set(labels), key=CLASSES.index)
    y = np.asarray([CLASSES.index(lab) for lab in labels])
    # class-balanced weights over the classes present, times the per-set weight
    counts = np.bincount(y, minlength=len(CLASSES)).astype(np.float64)
    balance = np.where(counts > 0, len(y) / (len(present) * np.maximum(counts, 1)), 0.0)
    sample_weight = np.asarray(weights, dtype=np.float64) * balance[y]
    clf = LogisticRegression(C=c, max_iter=3000)
    clf.fit(x, y, sample_weight=sample_weight)
    coef = np.zeros((len(CLASSES), x.shape[1]), dtype=np.float32)
    intercept = np.full(len(CLASSES), -1e4, dtype=np.float32)  # absent classes are never predicted
    for row, cls in enumerate(clf.classes_):
        if len(clf.classes_) == 2:
            # binary sklearn models keep one row: logit of the second class
            sign = 1.0 if row == 1 else -1.0
            coef[cls] = sign * clf.coef_[0] / 2
            intercept[cls] = sign * clf.intercept_[0] / 2
        else:
            coef[cls] = clf.coef_[row]
            intercept[cls] = clf.intercept_[row]
    info: dict[str, object] = {
        "c": c,
        "partial_boost": partial_boost,
        "n_train": len(y),
        "counts": dict(zip(CLASSES, counts.astype(int).tolist(), strict=True)),
    }
    info.update(meta or {})
    return ClassifierModel(coef=coef, intercept=intercept, vocabulary={}, phrases=builtin_phrases(), meta=info)
