"""Per-module mutation score from mutmut's results (``mutants/``), against the 85% target.

A mutant counts as killed when a test failed, timed out or the type checker rejected it; as
equivalent when ``tests/mutation_equivalents.txt`` lists it with its reason (behaviour no test
can tell apart); as survived otherwise (``no tests`` included). The score is killed over
non-equivalent mutants; ``of all`` is killed over every mutant, equivalents included. Exits 1 when
a module scores under the target or a survivor is neither killed nor listed, so ``make mutation``
fails loudly.

    python scripts/mutation_report.py [--target 0.85] [--survivors]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

from mutmut.stats import status_by_exit_code

ROOT = Path(__file__).resolve().parents[1]
EQUIVALENTS = ROOT / "tests" / "mutation_equivalents.txt"
KILLED = {"killed", "timeout", "caught by type check", "segfault"}


def equivalents() -> dict[str, str]:
    """Mutant name -> one-line reason, from the checked-in list."""
    out: dict[str, str] = {}
    if EQUIVALENTS.is_file():
        for line in EQUIVALENTS.read_text(encoding="utf-8").splitlines():
            name, _, reason = line.partition("#")
            if name.strip():
                if not reason.strip():
                    sys.exit(f"error: {EQUIVALENTS.name}: {name.strip()} has no reason after '#'")
                out[name.strip()] = reason.strip()
    return out


def results(root: Path) -> dict[str, tuple[str, int | None]]:
    """Every mutant mutmut generated under ``root/mutants``: name -> (module, exit code; None while not checked)."""
    out: dict[str, tuple[str, int | None]] = {}
    for meta in sorted((root / "mutants" / "src").rglob("*.py.meta")):
        module = meta.relative_to(root / "mutants" / "src").with_suffix("").with_suffix("").as_posix()
        for key, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            out[key] = (module, code)
    return out


def main() -> int:
    """Print the table; exit status as the module docstring says."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", type=float, default=0.85)
    parser.add_argument("--survivors", action="store_true", help="list every survivor not listed as equivalent")
    args = parser.parse_args()
    listed = equivalents()
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    survivors: list[str] = []
    unchecked = 0
    for key, (module, code) in sorted(results(ROOT).items(), key=lambda item: item[1][0]):
        status = status_by_exit_code[code]
        if status == "not checked":
            unchecked += 1
        if status in KILLED:
            counts[module]["killed"] += 1
        elif key in listed:
            counts[module]["equivalent"] += 1
        else:
            counts[module]["survived"] += 1
            survivors.append(f"{key}  ({status})")
    if not counts:
        print("error: no mutmut results under mutants/: run `mutmut run` first", file=sys.stderr)
        return 2
    failing = []
    print(f"{'module':<48} {'killed':>7} {'survived':>9} {'equivalent':>11} {'score':>7} {'of all':>7}")
    for module, c in sorted(counts.items()):
        scored = c["killed"] + c["survived"]
        score = c["killed"] / scored if scored else 1.0
        if score < args.target:
            failing.append(module)
        of_all = c["killed"] / (scored + c["equivalent"])
        print(f"{module:<48} {c['killed']:>7} {c['survived']:>9} {c['equivalent']:>11} {score:>7.1%} {of_all:>7.1%}")
    total = {k: sum(c[k] for c in counts.values()) for k in ("killed", "survived", "equivalent")}
    print(f"{'all':<48} {total['killed']:>7} {total['survived']:>9} {total['equivalent']:>11}")
    if args.survivors:
        print("\n".join(survivors))
    if unchecked:
        print(f"error: {unchecked} mutants not checked yet: run `mutmut run` to the end", file=sys.stderr)
        return 1
    if failing or survivors:
        print(
            f"error: {len(failing)} module(s) under {args.target:.0%}; {len(survivors)} survivor(s) neither killed "
            f"nor listed in {EQUIVALENTS.relative_to(ROOT)} (see --survivors)",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
