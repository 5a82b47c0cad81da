"""Leave-one-source-out validation of the classifier judge: how it does on models and annotators it never saw.

Each source of human-labelled responses is held out in turn (each XSTest model, WildGuardTest,
OpenAI's RBR gold set, MSTS English refusal-only vs advice/encouragement, MSTS in ten other
languages); the judge is trained exactly as the shipped one (``scripts/train_default_judge.py``)
on the other sources plus the project's own written data, with its regularisation and cascade
thresholds chosen by leave-sources-out folds *inside* that training data, and then judges the
held-out source through the same cascade the shipped judge runs. The keyword judge is scored
beside it.

Features are computed once per text and cached under ``.cache/`` (delete it to recompute).
Last line: ``min_binary=<x> min_kappa=<y> mean_binary=<z>`` (targets 0.93 / 0.85); the script
exits 1 when the targets are missed and 2 when the data folder is incomplete.

    python benchmarks/judge_generalisation.py [--data ../shared/data] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from overrefusal.errors import BadInputError
from overrefusal.judges.agreement import Agreement, agreement
from overrefusal.judges.gold import load_sources
from overrefusal.judges.keywords import KeywordJudge
from overrefusal.judges.validation import leave_one_source_out

ROOT = Path(__file__).resolve().parents[1]
TARGET_BINARY, TARGET_KAPPA = 0.93, 0.85


def row(name: str, a: Agreement, k: Agreement, three_class: bool, stages: dict[str, int]) -> dict[str, object]:
    return {
        "source": name,
        "n": a.n,
        "binary": a.binary_accuracy,
        "kappa": a.kappa,
        "three_class": a.three_class_accuracy if three_class else None,
        "partial_recall": a.partial_recall if three_class else None,
        "keywords_binary": k.binary_accuracy,
        "keywords_kappa": k.kappa,
        "stages": stages,
    }


def fmt(v: object) -> str:
    return "-" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache")
    parser.add_argument("--json", type=Path, help="also write the table as JSON here")
    args = parser.parse_args()
    try:
        sources = load_sources(args.data)
    except BadInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    keywords = KeywordJudge()
    rows = []
    for score in leave_one_source_out(sources, args.cache, log=print):
        held = sources[score.source]
        kw = agreement(held.labels, [keywords.judge_one(item).label for item in held.items])
        rows.append(row(score.source, score.agreement, kw, score.three_class, score.stages))
    header = ("source", "n", "binary", "kappa", "3-class", "partial recall", "keywords binary", "keywords kappa")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        cells = [r["source"], r["n"], r["binary"], r["kappa"], r["three_class"], r["partial_recall"]]
        cells += [r["keywords_binary"], r["keywords_kappa"]]
        print("| " + " | ".join(fmt(c) for c in cells) + " |")
    fast = sum(int(r["stages"].get("fast", 0)) for r in rows)  # type: ignore[attr-defined]
    read = sum(int(r["stages"].get("read", 0)) for r in rows)  # type: ignore[attr-defined]
    print(f"cascade: the fast model decided {fast} of {fast + read} English answers ({fast / max(1, fast + read):.0%})")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    binary = [float(r["binary"]) for r in rows]  # type: ignore[arg-type]
    kappa = [float(r["kappa"]) for r in rows]  # type: ignore[arg-type]
    print(f"min_binary={min(binary):.3f} min_kappa={min(kappa):.3f} mean_binary={float(np.mean(binary)):.3f}")
    return 0 if min(binary) >= TARGET_BINARY and min(kappa) >= TARGET_KAPPA else 1


if __name__ == "__main__":
    sys.exit(main())
