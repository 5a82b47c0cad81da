"""Near-duplicate dedup of 80,000 synthetic prompts on 2 cores: wall time (embedding included) and peak memory.

Prompts are built from random words of the MiniLM vocabulary, so distinct prompts are far apart;
a known share of them are planted near-duplicates of an earlier prompt (the same words with
light edits: casing, a polite prefix or suffix, changed punctuation). The script reports how
many planted duplicates were found, how many other prompts were dropped, and on its last line
``seconds=<s> peak_gb=<g>`` (targets: s <= 300, g <= 4). It exits 1 when the dedup itself was wrong
(under 99% of the planted duplicates found, or over 1% of the other prompts dropped).

    python benchmarks/dedup_scale.py [--n 80000] [--share 0.1] [--threshold 0.9] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import sys

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "2")  # before numpy loads: the dot products use 2 cores too

import json  # noqa: E402
import random  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402

from overrefusal.embeddings import TOKENIZER_FILE, Embedder  # noqa: E402
from overrefusal.generation.dedup import dedup_texts  # noqa: E402

OPENERS = ("How do I", "What is the best way to", "Can you explain how to", "Why would someone", "Where can I")
PREFIXES = ("Please tell me: ", "Quick question: ", "Hi! ")
SUFFIXES = (" Thanks.", " Please answer briefly.", "")


def vocabulary() -> list[str]:
    vocab = json.loads(TOKENIZER_FILE.read_text(encoding="utf-8"))["model"]["vocab"]
    return sorted(w for w in vocab if re.fullmatch(r"[a-z]{4,12}", w))


def synthetic(n: int, share: float, seed: int = 0) -> tuple[list[str], dict[int, int]]:
    """``n`` prompts; ``planted`` maps each near-duplicate's index to the index of its original."""
    rng = random.Random(seed)
    words = vocabulary()
    texts: list[str] = []
    planted: dict[int, int] = {}
    originals: list[int] = []
    for i in range(n):
        if originals and rng.random() < share:
            source = rng.choice(originals)
            base = texts[source].rstrip("?")
            edit = rng.randrange(3)
            if edit == 0:
                text = rng.choice(PREFIXES) + base[0].lower() + base[1:] + "?"
            elif edit == 1:
                text = base + "?" + rng.choice(SUFFIXES[:2])
            else:
                opener, _, rest = base.partition(" ")
                text = f"{opener} really {rest}?"
            planted[i] = source
        else:
            text = f"{rng.choice(OPENERS)} {' '.join(rng.choice(words) for _ in range(rng.randint(7, 14)))}?"
            originals.append(i)
        texts.append(text)
    return texts, planted


MIN_RECALL = 0.99
"""Share of planted near-duplicates the dedup must find (the script exits 1 below it)."""
MAX_OTHER_DROPPED = 0.01
"""Share of all prompts that may be dropped without being planted (distinct synthetic prompts can collide)."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=80_000)
    parser.add_argument("--share", type=float, default=0.1, help="share of planted near-duplicates")
    parser.add_argument("--threshold", type=float, default=0.9)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256, help="texts per ONNX call (as the dedup stage)")
    args = parser.parse_args()

    texts, planted = synthetic(args.n, args.share)
    started = time.perf_counter()
    timings: dict[str, float] = {}
    embedder = Embedder(threads=args.threads, batch_size=args.batch_size)
    decisions, _ = dedup_texts(texts, args.threshold, embedder, timings=timings)
    seconds = time.perf_counter() - started
    dropped = {i for i, d in enumerate(decisions) if not d["kept"]}
    found = len(dropped & planted.keys())
    extra = len(dropped - planted.keys())
    reasons: dict[str, int] = {}
    for d in decisions:
        reasons[d["reason"] or "kept"] = reasons.get(d["reason"] or "kept", 0) + 1
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    peak_gb = peak_kb / 1024**2 if sys.platform != "darwin" else peak_kb / 1024**3
    print(
        f"prompts={len(texts)} planted_near_duplicates={len(planted)} found={found} "
        f"recall={found / max(1, len(planted)):.4f} other_dropped={extra} decisions={reasons}"
    )
    print(
        f"rate={len(texts) / seconds:.0f} prompts/s "
        f"embed_s={timings['embed_s']:.1f} search_s={timings['search_s']:.1f} "
        f"threshold={args.threshold} threads={args.threads} load_avg_1m={os.getloadavg()[0]:.2f}"
    )
    print(f"seconds={seconds:.1f} peak_gb={peak_gb:.2f}")
    # the figures mean nothing if the dedup was wrong: every planted duplicate found, few others dropped
    recall = found / max(1, len(planted))
    if recall < MIN_RECALL or extra > MAX_OTHER_DROPPED * len(texts):
        print(f"error: recall {recall:.4f} < {MIN_RECALL} or {extra} unplanted prompts dropped", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
