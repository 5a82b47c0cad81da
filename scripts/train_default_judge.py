"""Train the built-in classifier judge and report leave-one-model-out cross-validation.

Reads the XSTest v2 completions (Röttger et al., NAACL 2024) from a local folder (never
copied into the repository) plus the project's own labelled responses, prints each fold
(train on two models + authored data, test on the third) and the pooled figures, then
fits the shipped model on everything.

    python scripts/train_default_judge.py ../shared/data/xstest/completions
"""

from __future__ import annotations

import asyncio
import json
import sys
from importlib.resources import files
from pathlib import Path

from overrefusal.judges.agreement import agreement
from overrefusal.judges.classifier import DEFAULT_MODEL, ClassifierJudge
from overrefusal.judges.gold import load_gold
from overrefusal.judges.training import TrainSet, train

AUTHORED_WEIGHT = 0.5


def main() -> None:
    """Cross-validate, then train and write the shipped model."""
    folder = Path(sys.argv[1])
    models = {p.stem.rsplit("_", 1)[-1]: load_gold(p) for p in sorted(folder.glob("*.csv"))}
    authored = load_gold(Path(str(files("overrefusal.judges").joinpath("data/authored.csv"))))
    gold_all, pred_all = [], []
    for name, test in models.items():
        sets = [TrainSet(g) for n, g in models.items() if n != name] + [TrainSet(authored, AUTHORED_WEIGHT)]
        model = train(sets)
        judge = ClassifierJudge.__new__(ClassifierJudge)
        judge.model = model
        verdicts = asyncio.run(judge.judge(test.items))
        pred = [v.label for v in verdicts]
        a = agreement(test.labels, pred)
        print(
            json.dumps(
                {
                    "fold": name,
                    **{
                        k: getattr(a, k)
                        for k in ("binary_accuracy", "kappa", "three_class_accuracy", "partial_recall", "n")
                    },
                }
            )
        )
        gold_all += list(test.labels)
        pred_all += pred
    a = agreement(gold_all, pred_all)
    print(
        json.dumps(
            {
                "fold": "pooled",
                **{
                    k: getattr(a, k)
                    for k in ("binary_accuracy", "kappa", "three_class_accuracy", "partial_recall", "n")
                },
            }
        )
    )
    everything = [TrainSet(g) for g in models.values()] + [TrainSet(authored, AUTHORED_WEIGHT)]
    model = train(everything, meta={"trained_on": "XSTest v2 completions (3 models) + overrefusal authored.csv"})
    out = Path(__file__).resolve().parents[1] / "src/overrefusal/judges" / DEFAULT_MODEL
    model.save(out)
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
