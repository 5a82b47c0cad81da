"""The training examples of the refusal predictor, read from run folders written by ``overrefusal run``.

Kept apart from :mod:`overrefusal.predictor` so that the generation stages, which only load and
apply a predictor, never import the readers of run folders.
"""

from __future__ import annotations

from pathlib import Path

from overrefusal.errors import BadInputError
from overrefusal.predictor import ANSWERED, REFUSED, Example
from overrefusal.report.runs import iter_response_dicts, load_run, verdict_labels


def examples_from_run(path: str | Path) -> list[Example]:
    """The judged (prompt, refused?) pairs of one run folder; errors and unscored answers are left out."""
    run = load_run(path)
    if not run.verdicts_path.is_file():
        raise BadInputError(f"{run.path} has no verdicts.jsonl: judge the run first (overrefusal run writes it)")
    labels = verdict_labels(run)
    out = []
    for _offset, row in iter_response_dicts(run):
        response = row.get("response") or {}
        label = labels.get(str(response.get("key")), ("", ""))[0]
        if label in REFUSED + ANSWERED:
            out.append(Example(str(row["prompt"]["text"]), label in REFUSED, run.model, run.path.name))
    return out
