"""Rebuild the shipped classifier judge (``src/overrefusal/judges/classifier_default.npz``).

Trains on every public human-labelled source in a local data folder (XSTest's three models,
WildGuardTest, OpenAI's RBR gold set, MSTS; never copied into the repository) plus the
project's own written responses (``judges/data/authored*.csv``). Regularisation and cascade
thresholds are chosen by leave-sources-out folds inside that data; training is deterministic
(lbfgs on fixed data), so the same inputs give the same weights. How well this recipe does on
sources it has not seen is measured by ``benchmarks/judge_generalisation.py``.

    python scripts/train_default_judge.py [../shared/data]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from overrefusal.judges.classifier import DEFAULT_MODEL
from overrefusal.judges.features import is_english
from overrefusal.judges.gold import PUBLIC_SOURCES, GoldSet, load_sources
from overrefusal.judges.training import TrainSet, builtin_sets, cached_features, fit, labelled

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    """Train on everything and write the shipped model."""
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "data"
    sources = load_sources(folder)
    everything = GoldSet.concat([*sources.values(), builtin_sets()[0].gold])
    x = cached_features(everything, ROOT / ".cache", log=print)  # the cache benchmarks/judge_generalisation.py fills
    rows = np.flatnonzero([is_english(i.response.text) for i in everything.items])
    gold = everything.subset([int(i) for i in rows])
    model = fit(
        labelled([TrainSet(gold)], x.rows(rows)),
        meta={"trained_on": [*PUBLIC_SOURCES, "authored"], "recipe": "scripts/train_default_judge.py"},
    )
    out = ROOT / "src/overrefusal/judges" / DEFAULT_MODEL
    tmp = out.with_name(out.name + ".tmp.npz")
    model.save(tmp)
    tmp.replace(out)
    print(f"C={model.meta['c']} cascade={model.low}/{model.high} cv={model.meta.get('cv_source_accuracy')}")
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
