"""How the classifier judge does on sources it never saw, and how the shipped one does on each source.

Both use the features :func:`~overrefusal.judges.training.cached_features` keeps on disk, and route
answers exactly as :func:`~overrefusal.judges.classifier.classify` does: English answers through the
cascade, others through the per-language refusal openings. Used by
``benchmarks/judge_generalisation.py`` (the README's leave-one-source-out table) and by the test
suite's quality gate.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from overrefusal.judges.agreement import Agreement, agreement
from overrefusal.judges.classifier import ClassifierModel, route
from overrefusal.judges.features import is_english
from overrefusal.judges.gold import GoldSet
from overrefusal.judges.training import Features, TrainSet, builtin_sets, cached_features, fit, labelled
from overrefusal.records import VerdictLabel


@dataclass(frozen=True)
class SourceScore:
    """A judge's agreement with one source's human labels."""

    source: str
    agreement: Agreement
    three_class: bool
    """Whether the source labels partial refusals (else only its binary figures mean anything)."""
    stages: dict[str, int]
    """Answers decided by each stage (``fast``, ``read``, ``keywords``)."""
    model: ClassifierModel


def _decide(model: ClassifierModel, gold: GoldSet, x: Features) -> tuple[list[VerdictLabel], dict[str, int]]:
    """Labels for every item of ``gold`` (features ``x``, same order), routed as ``classify`` routes them."""
    texts = [item.response.text for item in gold.items]
    decisions = route(model, texts, lambda rows: x.fast[rows], lambda rows: x.read[rows])
    labels: list[VerdictLabel] = [decisions[i].label if t.strip() else "unscored" for i, t in enumerate(texts)]
    stages: dict[str, int] = {}
    for decision in decisions:
        stages[decision.stage] = stages.get(decision.stage, 0) + 1
    return labels, stages


def _featurised(
    sources: Mapping[str, GoldSet], cache: Path, log: Callable[[str], None] | None
) -> tuple[GoldSet, Features]:
    """The public sources plus the authored data, and their features (one cache file for both uses)."""
    everything = GoldSet.concat([*sources.values(), builtin_sets()[0].gold])
    return everything, cached_features(everything, cache, log=log)


def leave_one_source_out(
    sources: Mapping[str, GoldSet],
    cache: Path,
    *,
    c: float | None = None,
    only: Sequence[str] | None = None,
    log: Callable[[str], None] | None = None,
) -> list[SourceScore]:
    """Hold out each source in turn, train the shipped recipe on the others plus the authored data, score it.

    Args:
        sources: the public sources (:func:`~overrefusal.judges.gold.load_sources`).
        cache: where features are kept between runs.
        c: fixed regularisation (None: chosen by folds inside the training data, as the shipped recipe).
        only: hold out only these sources (all by default).
        log: progress lines.
    """
    import numpy as np

    everything, x_all = _featurised(sources, cache, log)
    english = np.asarray([is_english(i.response.text) for i in everything.items])
    groups = np.asarray(everything.groups)
    scores = []
    for name, held in sources.items():
        if only is not None and name not in only:
            continue
        train_rows = np.flatnonzero((groups != name) & english)
        model = fit(labelled([TrainSet(everything.subset([int(i) for i in train_rows]))], x_all.rows(train_rows)), c=c)
        labels, stages = _decide(model, held, x_all.rows(np.flatnonzero(groups == name)))
        scores.append(SourceScore(name, agreement(held.labels, labels), held.three_class, stages, model))
        if log is not None:
            a = scores[-1].agreement
            log(f"  {name}: binary {a.binary_accuracy:.3f} kappa {a.kappa:.3f} (C={model.meta['c']})")
    return scores


def per_source(model: ClassifierModel, sources: Mapping[str, GoldSet], cache: Path) -> list[SourceScore]:
    """``model`` (e.g. the shipped one) scored on each source, from cached features."""
    import numpy as np

    everything, x_all = _featurised(sources, cache, None)
    groups = np.asarray(everything.groups)
    out = []
    for name, held in sources.items():
        labels, stages = _decide(model, held, x_all.rows(np.flatnonzero(groups == name)))
        out.append(SourceScore(name, agreement(held.labels, labels), held.three_class, stages, model))
    return out
