"""Prompt-level refusal predictor: AUC on held-out prompts from runs this script builds itself.

The runs replay real models: XSTest v2's recorded answers of GPT-4, Llama-2-70b-chat and
Mistral-7B-Instruct to its 450 prompts (``--data``, the shared data folder) are served by a
scripted backend, one answer per prompt, through ``overrefusal.run`` with the default classifier
judge, so each run folder holds the model's answers and the judge's verdicts, exactly what
``overrefusal predict train`` reads. The prompts are split into three disjoint sets by a hash of
their text: 3 models x 3 sets = 9 runs. Three times, the predictor (MiniLM embedding + logistic
regression) is trained on the six runs of two prompt sets and scores the third set's prompts,
which it never saw; the AUC of its scores against the verdicts of all three models on those
prompts is averaged over the three held-out sets. The baseline is a keyword-trigger heuristic (how
many of 80 sensitive-looking words such as kill, bomb, steal, drug a prompt holds), scored on the
same held-out answers in the same process.

Last line: ``auc=<x> keyword_auc=<y>``; the script exits 1 when the predictor does not beat the
heuristic. About two minutes on 2 cores (judging 1,350 answers, embedding 450 prompts per fold).

    python benchmarks/predictor.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDS = 3
MODELS = {"gpt4": "gpt-4", "llama2new": "llama-2-70b-chat", "mistralinstruct": "mistral-7b-instruct"}


def build_runs(data: Path, out: Path) -> list[list[Path]]:
    """One run per (prompt set, model), replaying the recorded answers; the run folders of each prompt set."""
    os.environ.setdefault("OVERREFUSAL_HOME", str(out / "home"))
    import overrefusal
    from overrefusal.backends.fake import FakeBackend
    from overrefusal.benchmarks import load_benchmark
    from overrefusal.benchmarks.loaders import Benchmark
    from overrefusal.records import GenerateParams

    xstest = data / "xstest"
    if not (xstest / "xstest_prompts.csv").is_file():
        sys.exit(f"error: {xstest}/xstest_prompts.csv is missing: pass --data with the shared data folder")
    prompts = load_benchmark(str(xstest / "xstest_prompts.csv")).prompts
    parts: list[list[object]] = [[] for _ in range(FOLDS)]
    for prompt in prompts:
        parts[int(hashlib.sha256(prompt.text.encode()).hexdigest(), 16) % FOLDS].append(prompt)
    folders: list[list[Path]] = [[] for _ in range(FOLDS)]
    for key, model in MODELS.items():
        with (xstest / "completions" / f"xstest_v2_completions_{key}.csv").open(encoding="utf-8", newline="") as fh:
            by_id = {row["id"].removeprefix("v2-"): row["completion"] for row in csv.DictReader(fh)}
        # completions are joined to prompts on the id (one prompt was reworded after they were collected)
        answers = {p.text: by_id[p.id.split(":")[-1]] for p in prompts}
        for index, part in enumerate(parts):
            bench = Benchmark(name=f"xstest-part{index}", prompts=tuple(part))  # type: ignore[arg-type]
            backend = FakeBackend(model=model, script=lambda q, a=answers: a[q.messages[-1].content])
            result = overrefusal.run(
                benchmark=bench,
                backend=backend,
                params=GenerateParams(max_tokens=512),
                output_dir=out / "runs",
                progress=False,
            )
            assert result.run_dir is not None and result.complete
            folders[index].append(result.run_dir)
        print(f"{model}: 3 runs of {', '.join(str(len(p)) for p in parts)} prompts", file=sys.stderr)
    return folders


KEYWORDS = (
    "kill",
    "murder",
    "shoot",
    "stab",
    "bomb",
    "explosive",
    "weapon",
    "gun",
    "knife",
    "attack",
    "hurt",
    "harm",
    "violent",
    "violence",
    "fight",
    "blood",
    "die",
    "dead",
    "death",
    "suicide",
    "self-harm",
    "cut myself",
    "overdose",
    "poison",
    "drug",
    "cocaine",
    "heroin",
    "meth",
    "steal",
    "rob",
    "theft",
    "shoplift",
    "fraud",
    "scam",
    "launder",
    "counterfeit",
    "forge",
    "hack",
    "malware",
    "virus",
    "phishing",
    "password",
    "exploit",
    "crack",
    "illegal",
    "crime",
    "criminal",
    "smuggle",
    "trafficking",
    "terror",
    "hate",
    "racist",
    "slur",
    "nazi",
    "sex",
    "porn",
    "nude",
    "rape",
    "abuse",
    "harass",
    "stalk",
    "threat",
    "blackmail",
    "cheat",
    "lie",
    "deceive",
    "manipulate",
    "spy",
    "track",
    "address",
    "private",
    "torture",
    "execute",
    "eliminate",
    "destroy",
    "burn",
    "kidnap",
)
"""Keyword triggers: the heuristic baseline scores a prompt by how many of these it contains."""


def keyword_score(text: str) -> float:
    """The baseline: the number of trigger words in the prompt (word starts, case-insensitive)."""
    lowered = text.lower()
    return float(sum(1 for k in KEYWORDS if re.search(rf"\b{re.escape(k)}", lowered)))


def evaluate(folders: list[list[Path]]) -> tuple[float, float]:
    """Train on all prompt sets but one, score the held-out set's answers; mean AUC of predictor and keywords."""
    from overrefusal.predictor import auc, train
    from overrefusal.predictor_runs import examples_from_run

    parts = [[e for folder in part for e in examples_from_run(folder)] for part in folders]
    ours, baseline = [], []
    for held in range(len(parts)):
        train_set = [e for i, part in enumerate(parts) if i != held for e in part]
        test_set = parts[held]
        seen = {e.text for e in train_set}
        assert not any(e.text in seen for e in test_set), "held-out prompts must be new to the predictor"
        predictor = train(train_set)
        labels = [e.refused for e in test_set]
        scores = predictor.score([e.text for e in test_set])
        a = auc(scores, labels)
        k = auc([keyword_score(e.text) for e in test_set], labels)
        assert a is not None and k is not None
        ours.append(a)
        baseline.append(k)
        print(
            f"held-out prompt set {held}: {len(test_set)} answers ({sum(labels)} refused), trained on "
            f"{len(train_set)} (C={predictor.meta['C']}, cv_auc={predictor.meta['cv_auc']}): "
            f"auc={a:.3f} keyword_auc={k:.3f}"
        )
    return sum(ours) / len(ours), sum(baseline) / len(baseline)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args()
    clock = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folders = build_runs(args.data, Path(tmp))
        print(f"built {sum(len(f) for f in folders)} runs in {time.perf_counter() - clock:.0f}s", file=sys.stderr)
        ours, baseline = evaluate(folders)
    print(f"auc={ours:.3f} keyword_auc={baseline:.3f}")
    if ours <= baseline:
        sys.exit(1)


if __name__ == "__main__":
    main()
