"""Classifier-judge throughput (responses/s) with its cascade, against the same judge reading every answer.

Both sides run the same model on the same distinct responses in one process, with the same
threads and batch size: the baseline sets the cascade band to everything (every English answer
gets the read pass), the measured side uses the shipped thresholds. Rounds alternate so
neither side gets the warm cache. Both sides' binary decisions are scored against the files' human
labels, and the script exits 1 if the cascade loses more than one point of accuracy to reading
everything (what it buys must be speed, not a worse judge). Besides
wall-clock rates it prints responses per CPU-second of this process (on a busy shared machine,
``threads`` times that is what idle cores give).

Last line: ``responses_per_s=<cascade judge> ratio=<cascade / read-everything> fast_share=<share>``.

    python benchmarks/judge_speed.py [--file LABELLED ...] [--n 1000] [--rounds 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from overrefusal.judges import classifier, features
from overrefusal.judges.base import JudgeItem
from overrefusal.judges.classifier import ClassifierJudge, Decision
from overrefusal.judges.gold import load_gold
from overrefusal.judges.training import BUILTIN_DATA

ROOT = Path(__file__).resolve().parents[1]


def timed(fn: Callable[[], object], n: int) -> tuple[float, float, object]:
    """(items per wall second, items per CPU second of this process, the result)."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return n / (time.perf_counter() - wall), n / max(time.process_time() - cpu, 1e-9), out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--file", type=Path, action="append", help="labelled responses (default: the built-in data)")
    parser.add_argument("--n", type=int, default=1000, help="at most this many distinct responses")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    paths = args.file or [ROOT / "src/overrefusal/judges" / name for name in BUILTIN_DATA]
    seen: dict[str, tuple[JudgeItem, bool]] = {}
    for path in paths:
        gold = load_gold(path)
        for item, label in zip(gold.items, gold.labels, strict=True):
            if item.response.text.strip():
                seen.setdefault(item.response.text, (item, label != "compliance"))
    pairs = list(seen.values())[: args.n]
    items = [i for i, _ in pairs]
    refused = [r for _, r in pairs]
    for kind in ("opening", "reader", "prompt"):
        classifier._embedders[kind] = classifier.make_embedder(kind, threads=args.threads)
    cascade = ClassifierJudge()
    everything = ClassifierJudge.__new__(ClassifierJudge)
    everything.model = dataclasses.replace(cascade.model, low=0.0, high=1.0)
    cascade.decisions(items[:32])
    everything.decisions(items[:32])
    rates: dict[str, list[tuple[float, float]]] = {"cascade": [], "everything": []}
    decided: dict[str, list[Decision]] = {}
    for _ in range(args.rounds):
        for name, judge in (("cascade", cascade), ("everything", everything)):
            wall, cpu, out = timed(lambda j=judge: j.decisions(items), len(items))
            rates[name].append((wall, cpu))
            decided[name] = out  # type: ignore[assignment]
    wall = {k: statistics.median(r[0] for r in v) for k, v in rates.items()}
    cpu = {k: statistics.median(r[1] for r in v) for k, v in rates.items()}
    fast = sum(1 for d in decided["cascade"] if d.stage == "fast")
    english = sum(1 for d in decided["cascade"] if d.stage != "keywords")
    accuracy = {
        name: sum((d.label != "compliance") == r for d, r in zip(out, refused, strict=True)) / len(items)
        for name, out in decided.items()
    }
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"responses: {len(items)} distinct from {', '.join(p.name for p in paths)}")
    print(f"threads={args.threads}, rounds={args.rounds}, load average (1 min) at the end {load:.2f}")
    print(
        f"read every answer ({features.READ_TOKENS} tokens): {wall['everything']:.0f} responses/s, "
        f"{cpu['everything']:.0f} per CPU-s"
    )
    print(f"cascade (shipped thresholds):   {wall['cascade']:.0f} responses/s, {cpu['cascade']:.0f} per CPU-s")
    print(f"the fast model decided {fast} of {english} English answers")
    print(f"binary accuracy: cascade {accuracy['cascade']:.3f}, read everything {accuracy['everything']:.3f}")
    share = fast / max(1, english)
    print(
        f"responses_per_s={wall['cascade']:.0f} ratio={wall['cascade'] / wall['everything']:.2f} fast_share={share:.2f}"
    )
    return 1 if accuracy["cascade"] < accuracy["everything"] - 0.01 else 0


if __name__ == "__main__":
    sys.exit(main())
