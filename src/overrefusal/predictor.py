"""Prompt-level refusal predictor: how likely a model is to refuse a prompt, from the prompt alone.

After Reuter & Schulze, "I'm Afraid I Can't Do That: Predicting Prompt Refusal in Black-Box
Generative Language Models" (2023). Examples are (prompt, refused?) pairs read from run folders
(:mod:`overrefusal.predictor_runs`: full, partial and provider refusals are refusals; unscored
answers and errors are left out). Features are the prompt's MiniLM embedding
(:mod:`overrefusal.embeddings`); the model is an L2 logistic regression fitted with scikit-learn
(``train`` extra), its strength chosen by cross-validation grouped by prompt. Inference needs
only numpy and onnxruntime: the file holds the weights, the intercept and what it was trained on.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from overrefusal.atomic import write_atomic
from overrefusal.errors import BadInputError, MissingDependencyError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from overrefusal.embeddings import Embedder

FORMAT = "overrefusal-refusal-predictor-v1"
REFUSED = ("full_refusal", "partial_refusal", "provider_refusal")
ANSWERED = ("compliance",)
STRENGTHS = (0.1, 0.3, 1.0, 3.0, 10.0)
"""Inverse regularisation strengths tried by cross-validation."""


@dataclass(frozen=True)
class Example:
    """One prompt a model answered, and whether it refused."""

    text: str
    refused: bool
    model: str
    run: str


def embed(texts: Sequence[str], embedder: Embedder | None = None) -> npt.NDArray[np.float32]:
    """MiniLM embeddings of ``texts`` (the features of the predictor)."""
    try:
        from overrefusal.embeddings import Embedder
    except ImportError as exc:  # pragma: no cover - numpy missing
        raise MissingDependencyError("the refusal predictor", "classifier", ["numpy", "onnxruntime"]) from exc
    return (embedder or Embedder(batch_size=256)).encode(list(texts))


@dataclass(frozen=True)
class Predictor:
    """A fitted predictor: ``P(refused | prompt) = sigmoid(embedding . coef + intercept)``."""

    coef: list[float]
    intercept: float
    meta: dict[str, Any] = field(default_factory=dict)

    def score_embeddings(self, features: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        """Refusal probability per row of ``features``."""
        import numpy as np

        logits = features.astype(np.float64) @ np.asarray(self.coef, dtype=np.float64) + self.intercept
        return np.asarray(1.0 / (1.0 + np.exp(-logits)), dtype=np.float64)

    def score(self, texts: Sequence[str], embedder: Embedder | None = None) -> list[float]:
        """Refusal probability of each prompt text."""
        if not texts:
            return []
        return [float(p) for p in self.score_embeddings(embed(texts, embedder))]

    def save(self, path: str | Path) -> Path:
        """Write the predictor as JSON (complete or absent)."""
        target = Path(path)
        body = {"format": FORMAT, "coef": self.coef, "intercept": self.intercept, "meta": self.meta}
        write_atomic(target, json.dumps(body) + "\n")
        return target

    @classmethod
    def load(cls, path: str | Path) -> Predictor:
        """Read a predictor file; a missing or foreign file is a one-line :class:`BadInputError`."""
        file = Path(path)
        hint = "train one with `overrefusal predict train RUN... --output FILE`"
        try:
            body = json.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise BadInputError(f"predictor file {file} does not exist: {hint}") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            raise BadInputError(f"{file} is not a predictor file: {hint}") from None
        if not isinstance(body, dict) or body.get("format") != FORMAT or len(body.get("coef", [])) != 384:
            raise BadInputError(f"{file} is not a {FORMAT} file: {hint}")
        return cls(coef=[float(c) for c in body["coef"]], intercept=float(body["intercept"]), meta=body["meta"])


def auc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """Area under the ROC curve (ties count half); None when one class is missing."""
    positives = [s for s, y in zip(scores, labels, strict=True) if y]
    negatives = [s for s, y in zip(scores, labels, strict=True) if not y]
    if not positives or not negatives:
        return None
    ranked = sorted((s, i) for i, s in enumerate(scores))
    ranks = [0.0] * len(scores)
    start = 0
    while start < len(ranked):  # average ranks over ties
        end = start
        while end + 1 < len(ranked) and ranked[end + 1][0] == ranked[start][0]:
            end += 1
        for k in range(start, end + 1):
            ranks[ranked[k][1]] = (start + end) / 2 + 1
        start = end + 1
    positive_ranks = sum(r for r, y in zip(ranks, labels, strict=True) if y)
    n_pos, n_neg = len(positives), len(negatives)
    return (positive_ranks - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def train(examples: Sequence[Example], embedder: Embedder | None = None, folds: int = 5) -> Predictor:
    """Fit the predictor on ``examples``; the regularisation is chosen by folds grouped by prompt text."""
    try:
        import numpy as np
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import GroupKFold
    except ImportError as exc:
        raise MissingDependencyError("predict train", "train", ["scikit-learn"]) from exc
    labels = [e.refused for e in examples]
    if len(set(labels)) < 2:
        kind = "refused" if labels and labels[0] else "answered"
        raise BadInputError(
            f"all {len(labels)} judged prompts were {kind}: give runs where the model both refused and answered"
        )
    texts = [e.text for e in examples]
    groups = {t: i for i, t in enumerate(dict.fromkeys(texts))}
    features = embed(texts, embedder)
    y = np.asarray(labels, dtype=int)
    group_ids = np.asarray([groups[t] for t in texts])
    splits = min(folds, len(groups), int(y.sum()), int(len(y) - y.sum()))
    cv: dict[float, float] = {}
    if splits >= 2:
        for strength in STRENGTHS:
            scores = np.zeros(len(y))
            for train_idx, test_idx in GroupKFold(n_splits=splits).split(features, y, group_ids):
                if len(set(y[train_idx])) < 2:
                    continue
                model = LogisticRegression(C=strength, max_iter=2000).fit(features[train_idx], y[train_idx])
                scores[test_idx] = model.predict_proba(features[test_idx])[:, 1]
            value = auc(list(scores), labels)
            cv[strength] = value if value is not None else 0.5
    best = max(cv, key=lambda s: cv[s]) if cv else 1.0
    model = LogisticRegression(C=best, max_iter=2000).fit(features, y)
    meta = {
        "embedder": "all-MiniLM-L6-v2-int8-onnx",
        "examples": len(y),
        "refused": int(y.sum()),
        "prompts": len(groups),
        "models": sorted({e.model for e in examples}),
        "runs": sorted({e.run for e in examples}),
        "C": best,
        "cv_auc": None if not cv else round(cv[best], 4),
        "cv_folds": splits,
    }
    intercept = float(model.intercept_[0])
    if not math.isfinite(intercept):  # pragma: no cover - sklearn never returns this for finite inputs
        raise BadInputError("the predictor did not converge: give more varied runs")
    return Predictor(coef=[float(c) for c in model.coef_[0]], intercept=intercept, meta=meta)
