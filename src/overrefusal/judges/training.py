"""Train the classifier judge on labelled responses (scikit-learn, ``train`` extra).

Every choice made here (regularisation, cascade thresholds) is made by cross-validation over
the *sources* of the training data (leave-sources-out folds), never on random splits: a judge
meets models, eras and annotators it has not seen, and a random split hides that.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.resources import as_file, files
from pathlib import Path
from typing import TYPE_CHECKING, Any

from overrefusal.atomic import write_atomic
from overrefusal.errors import BadInputError, MissingDependencyError
from overrefusal.judges.classifier import ClassifierModel, Head, builtin_phrases
from overrefusal.judges.features import is_english
from overrefusal.judges.gold import GoldSet, load_gold

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

C_GRID = (0.1, 0.3, 1.0)
"""Inverse L2 strengths tried; the best on held-out training sources is kept."""
DEFAULT_C = 0.3
"""Used when the training data has too few sources to cross-validate."""
LOW_GRID = (0.0, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2)
HIGH_GRID = (1.0, 0.99, 0.98, 0.95, 0.9, 0.85, 0.8)
THRESHOLD_GRID = (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6)
"""Refusal thresholds tried on held-out training sources."""
PARTIAL_GRID = (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5)
"""Partial-refusal thresholds tried on held-out training sources. None above 0.5: the partial head is trained
class-balanced, and a higher threshold would undo that balance in favour of the commoner full refusal."""
CASCADE_TOLERANCE = 0.003
"""The cascade may cost at most this much held-out binary accuracy against the read model alone."""
BUILTIN_DATA = ("data/authored.csv", "data/authored_styles.csv")
"""The project's own labelled responses, shipped with the package."""


@dataclass(frozen=True)
class TrainSet:
    """A gold set and the weight of each of its items in the loss."""

    gold: GoldSet
    weight: float = 1.0


def builtin_sets(weight: float = 1.0) -> list[TrainSet]:
    """The project's own labelled responses, as one source named ``authored``."""
    sets = []
    for name in BUILTIN_DATA:
        with as_file(files("overrefusal.judges").joinpath(name)) as path:
            sets.append(load_gold(path).renamed("authored"))
    return [TrainSet(GoldSet.concat(sets), weight)]


@dataclass(frozen=True)
class Features:
    """Both feature blocks of a set of (prompt, response) pairs."""

    fast: npt.NDArray[np.float32]
    read: npt.NDArray[np.float32]

    @property
    def full(self) -> npt.NDArray[np.float32]:
        """Fast and read blocks side by side (what the read heads see)."""
        import numpy as np

        return np.hstack([self.fast, self.read])

    def rows(self, index: npt.NDArray[np.intp]) -> Features:
        """A subset of the rows."""
        return Features(self.fast[index], self.read[index])


def featurise(gold: GoldSet) -> Features:
    """Both feature blocks of every item, as the built-in model computes them."""
    probe = ClassifierModel(heads={}, low=0.0, high=1.0, phrases=builtin_phrases())
    prompts = [i.prompt for i in gold.items]
    texts = [i.response.text for i in gold.items]
    return Features(probe.fast_features(prompts, texts), probe.read_features(prompts, texts))


def cached_features(gold: GoldSet, cache: Path, log: Callable[[str], None] | None = None) -> Features:
    """:func:`featurise`, kept on disk under ``cache`` per feature version and content (training scripts)."""
    import hashlib
    import time

    import numpy as np

    from overrefusal.judges.classifier import FEATURE_VERSION

    digest = hashlib.sha256(FEATURE_VERSION.encode())
    for item in gold.items:
        digest.update(item.prompt.encode() + b"\0" + item.response.text.encode() + b"\1")
    path = cache / f"judge-features-{digest.hexdigest()[:16]}.npz"
    if path.exists():
        with np.load(path) as data:
            return Features(data["fast"], data["read"])
    start = time.perf_counter()
    x = featurise(gold)
    write_atomic(path, lambda tmp: np.savez(tmp, fast=x.fast, read=x.read))
    if log is not None:
        log(f"  featurised {len(gold)} responses in {time.perf_counter() - start:.0f}s -> {path}")
    return x


def _sklearn() -> Any:
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError as exc:
        raise MissingDependencyError("training the classifier judge", "train", ["scikit-learn"]) from exc
    return LogisticRegression


def _weights(groups: Sequence[str], set_weights: Sequence[float], y: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """Sources weigh by the square root of their size; classes are balanced; mean weight 1."""
    import numpy as np

    sizes: dict[str, int] = {}
    for g in groups:
        sizes[g] = sizes.get(g, 0) + 1
    w = np.asarray([sw / np.sqrt(sizes[g]) for g, sw in zip(groups, set_weights, strict=True)], dtype=np.float64)
    for cls in np.unique(y):
        mask = y == cls
        w[mask] *= 0.5 / w[mask].sum()
    out: npt.NDArray[np.float64] = w * (len(w) / w.sum())
    return out


def _fit_head(x: npt.NDArray[np.float32], y: npt.NDArray[np.int64], w: npt.NDArray[np.float64], c: float) -> Head:
    import numpy as np

    if len(np.unique(y)) < 2:
        # one class only: a constant head that always says that class
        return Head(coef=np.zeros(x.shape[1], dtype=np.float32), intercept=10.0 if y.size and y[0] == 1 else -10.0)
    clf = _sklearn()(C=c, max_iter=2000)
    clf.fit(x, y, sample_weight=w)
    return Head(coef=clf.coef_[0].astype(np.float32), intercept=float(clf.intercept_[0]))


@dataclass(frozen=True)
class Labelled:
    """Training rows: features, binary and partial targets, sources and weights."""

    x: Features
    refusal: npt.NDArray[np.int64]
    partial: npt.NDArray[np.int64]
    """1 for partial refusals, 0 for full ones, -1 where unknown (compliance or binary-only labels)."""
    groups: tuple[str, ...]
    set_weights: tuple[float, ...]

    def rows(self, index: npt.NDArray[np.intp]) -> Labelled:
        """A subset of the rows."""
        return Labelled(
            self.x.rows(index),
            self.refusal[index],
            self.partial[index],
            tuple(self.groups[i] for i in index),
            tuple(self.set_weights[i] for i in index),
        )


def english_only(gold: GoldSet) -> GoldSet:
    """The items with English answers: the judge reads only those with its model (the rest by keywords)."""
    return gold.subset([i for i, item in enumerate(gold.items) if is_english(item.response.text)])


def labelled(sets: Sequence[TrainSet], x: Features | None = None) -> Labelled:
    """Targets and weights of ``sets`` (features computed unless given, in the same row order).

    Give English-only sets (:func:`english_only`): that is what the model will read.
    """
    import numpy as np

    gold = GoldSet.concat([s.gold for s in sets])
    if len({label == "compliance" for label in gold.labels}) < 2:
        raise BadInputError("training needs responses of at least two labels (compliance and a refusal kind)")
    refusal = np.asarray([label != "compliance" for label in gold.labels], dtype=np.int64)
    partial = np.asarray(
        [
            -1 if label == "compliance" or binary else int(label == "partial_refusal")
            for label, binary in zip(gold.labels, gold.binary, strict=True)
        ],
        dtype=np.int64,
    )
    weights = tuple(s.weight for s in sets for _ in s.gold.items)
    return Labelled(x if x is not None else featurise(gold), refusal, partial, gold.groups, weights)


def _heads(data: Labelled, c: float) -> dict[str, Head]:
    import numpy as np

    w = _weights(data.groups, data.set_weights, data.refusal)
    heads = {
        "fast_refusal": _fit_head(data.x.fast, data.refusal, w, c),
        "read_refusal": _fit_head(data.x.full, data.refusal, w, c),
    }
    known = np.flatnonzero(data.partial >= 0)
    if known.size:
        sub = data.rows(known)
        wp = _weights(sub.groups, sub.set_weights, sub.partial)
        heads["fast_partial"] = _fit_head(sub.x.fast, sub.partial, wp, c)
        heads["read_partial"] = _fit_head(sub.x.full, sub.partial, wp, c)
    else:
        zeros = np.zeros(data.x.full.shape[1], dtype=np.float32)
        heads["fast_partial"] = Head(zeros[: data.x.fast.shape[1]], -10.0)
        heads["read_partial"] = Head(zeros, -10.0)
    return heads


def _folds(groups: Sequence[str], k: int = 4) -> list[npt.NDArray[np.intp]]:
    """Held-out index sets that keep whole sources together (largest sources spread first)."""
    import numpy as np

    sizes: dict[str, int] = {}
    for g in groups:
        sizes[g] = sizes.get(g, 0) + 1
    k = min(k, len(sizes))
    buckets: list[list[str]] = [[] for _ in range(k)]
    load = [0] * k
    for g in sorted(sizes, key=lambda name: (-sizes[name], name)):
        b = load.index(min(load))
        buckets[b].append(g)
        load[b] += sizes[g]
    arr = np.asarray(groups)
    return [np.flatnonzero(np.isin(arr, bucket)) for bucket in buckets]


def _balanced_accuracy_by_source(y: npt.NDArray[np.int64], pred: npt.NDArray[np.int64], groups: Sequence[str]) -> float:
    """Mean over sources of accuracy: every source counts the same, however large."""
    import numpy as np

    arr = np.asarray(groups)
    return float(np.mean([np.mean(pred[arr == g] == y[arr == g]) for g in np.unique(arr)]))


def fit(data: Labelled, *, c: float | None = None, meta: dict[str, object] | None = None) -> ClassifierModel:
    """Fit the four heads and the cascade thresholds.

    ``c`` None chooses the regularisation from :data:`C_GRID` by leave-sources-out folds
    inside ``data`` (when it has at least three sources); the cascade thresholds are chosen on
    the same folds' held-out predictions.
    """
    import numpy as np

    folds = _folds(data.groups)
    info: dict[str, object] = {"n_train": len(data.refusal), "sources": sorted(set(data.groups))}
    low, high, threshold, partial_threshold = 0.05, 0.95, 0.5, 0.5
    if len(folds) >= 3:
        everything = np.arange(len(data.refusal))
        held: dict[float, tuple[npt.NDArray[np.float32], ...]] = {}
        for value in C_GRID if c is None else (c,):
            p_fast, p_read, q_read = (np.zeros(len(everything), dtype=np.float32) for _ in range(3))
            for test in folds:
                heads = _heads(data.rows(np.setdiff1d(everything, test)), value)
                part = data.x.rows(test)
                p_fast[test] = heads["fast_refusal"].proba(part.fast)
                p_read[test] = heads["read_refusal"].proba(part.full)
                q_read[test] = heads["read_partial"].proba(part.full)
            held[value] = (p_fast, p_read, q_read)
        scores = {
            value: _balanced_accuracy_by_source(data.refusal, (p[1] >= 0.5).astype(np.int64), data.groups)
            for value, p in held.items()
        }
        c = max(scores, key=lambda value: (scores[value], -value))
        p_fast, p_read, q_read = held[c]
        threshold = max(
            THRESHOLD_GRID,
            key=lambda t: (
                _balanced_accuracy_by_source(data.refusal, (p_read >= t).astype(np.int64), data.groups),
                -abs(t - 0.5),
            ),
        )
        partial_threshold = choose_partial_threshold(q_read, p_read >= threshold, data.partial, data.groups)
        low, high = choose_cascade(p_fast, p_read, data.refusal, data.groups, threshold)
        info["cv_source_accuracy"] = {str(k): round(v, 4) for k, v in scores.items()}
    c = DEFAULT_C if c is None else c
    info.update({"c": c, "cascade": [low, high], "thresholds": [threshold, partial_threshold]})
    info.update(meta or {})
    return ClassifierModel(
        heads=_heads(data, c),
        low=low,
        high=high,
        phrases=builtin_phrases(),
        meta=info,
        threshold=threshold,
        partial_threshold=partial_threshold,
    )


def choose_partial_threshold(
    q: npt.NDArray[np.float32],
    refused: npt.NDArray[np.bool_],
    partial: npt.NDArray[np.int64],
    groups: Sequence[str],
) -> float:
    """The p(partial) threshold with the best macro-F1 (partial and full) on held-out refusals, averaged over sources.

    Macro-F1 rather than accuracy: partial refusals are rare, so accuracy would never call one; and
    rather than the partial class's F1 alone, which calls plain refusals partial to catch a few more.
    """
    import numpy as np

    arr = np.asarray(groups)
    known = refused & (partial >= 0)
    sources = [g for g in np.unique(arr[known]) if len(np.unique(partial[known & (arr == g)])) == 2]
    if not sources:
        return 0.5

    def score(t: float) -> float:
        values = []
        for g in sources:
            mask = known & (arr == g)
            pred = q[mask] >= t
            truth = partial[mask] == 1
            f1 = [
                2 * float(np.sum(a & b)) / max(1.0, float(np.sum(a) + np.sum(b)))
                for a, b in ((pred, truth), (~pred, ~truth))
            ]
            values.append(sum(f1) / 2)
        return float(np.mean(values))

    return max(PARTIAL_GRID, key=lambda t: (score(t), -abs(t - 0.5)))


def choose_cascade(
    p_fast: npt.NDArray[np.float32],
    p_read: npt.NDArray[np.float32],
    y: npt.NDArray[np.int64],
    groups: Sequence[str],
    threshold: float = 0.5,
) -> tuple[float, float]:
    """The widest fast-decision band whose held-out accuracy is within tolerance of the read model's."""
    import numpy as np

    read_pred = (p_read >= threshold).astype(np.int64)
    target = _balanced_accuracy_by_source(y, read_pred, groups) - CASCADE_TOLERANCE
    best = (0.0, 1.0, 0.0)
    for low in (v for v in LOW_GRID if v < threshold):
        for high in (v for v in HIGH_GRID if v > threshold):
            fast_decides = (p_fast < low) | (p_fast > high)
            pred = np.where(fast_decides, (p_fast >= threshold).astype(np.int64), read_pred)
            share = float(fast_decides.mean())
            if _balanced_accuracy_by_source(y, pred, groups) >= target and share > best[2]:
                best = (low, high, share)
    return best[0], best[1]


def train(
    sets: Sequence[TrainSet], *, c: float | None = None, meta: dict[str, object] | None = None
) -> ClassifierModel:
    """Featurise the English answers of ``sets`` and :func:`fit` a model."""
    english = [TrainSet(english_only(s.gold), s.weight) for s in sets]
    return fit(labelled([s for s in english if len(s.gold)]), c=c, meta=meta)


__all__ = [
    "Features",
    "Labelled",
    "TrainSet",
    "builtin_sets",
    "cached_features",
    "choose_cascade",
    "choose_partial_threshold",
    "english_only",
    "featurise",
    "fit",
    "labelled",
    "train",
]
