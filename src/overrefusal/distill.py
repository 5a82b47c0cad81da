"""Distil a classifier judge for your own model from a strong teacher's labels.

A stratified sample of a run's answers (spread over runs, prompt labels and the run's own
verdicts) is labelled by a teacher: any judge (the ``llm`` judge on any backend, a vote of
several) or human labels from the viewer's gold file. A classifier is trained on those labels
plus the project's own written data; its agreement with the teacher is measured on a held-out
part of the sample (whole prompts held out), beside the built-in judge's agreement on the same
part, and the final model is trained on the whole sample.

Teacher verdicts are cached in the store like any verdict (and an LLM teacher's replies through
the cached-model layer), so an interrupted distillation resumes without asking again.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from overrefusal.errors import BadInputError
from overrefusal.judges.agreement import Agreement, agreement
from overrefusal.judges.base import Judge, JudgeItem
from overrefusal.judges.classifier import ClassifierJudge, ClassifierModel
from overrefusal.judges.gold import GoldLabel, GoldSet
from overrefusal.judges.training import TrainSet, builtin_sets, english_only, fit, labelled
from overrefusal.records import Prompt, Response
from overrefusal.report.runs import iter_responses, load_runs, verdict_labels
from overrefusal.store import Store
from overrefusal.verdicts import judge_responses

HOLDOUT_SHARE = 0.25
TEACHER_WEIGHT = 2.0
"""Weight of the teacher's labels against the built-in data (one source each)."""


@dataclass(frozen=True)
class Answer:
    """One answer of a run, with what the sample is stratified on."""

    prompt: Prompt
    response: Response
    stratum: tuple[str, str, str]
    """(model, prompt label, the run's own verdict label)."""


def run_answers(paths: Sequence[str | Path]) -> list[Answer]:
    """The successful, non-empty answers of the run folders."""
    out: list[Answer] = []
    for run in load_runs([Path(p) for p in paths]):
        labels = verdict_labels(run)
        for row in iter_responses(run):
            r = row.response
            if r is None or not r.ok or not r.text.strip():
                continue
            verdict = labels.get(r.key, ("unjudged", ""))[0]
            out.append(Answer(row.prompt, r, (run.model, str(row.prompt.label or ""), verdict)))
    if not out:
        raise BadInputError("the runs hold no answered responses to distil from: give run folders with answers")
    return out


def stratified_sample(answers: Sequence[Answer], n: int, seed: int) -> list[Answer]:
    """``n`` answers taken round-robin over strata (each stratum shuffled), so rare strata are kept."""
    rng = random.Random(seed)
    strata: dict[tuple[str, str, str], list[Answer]] = defaultdict(list)
    for a in answers:
        strata[a.stratum].append(a)
    queues = [strata[k] for k in sorted(strata)]
    for q in queues:
        rng.shuffle(q)
    out: list[Answer] = []
    while len(out) < n and any(queues):
        for q in queues:
            if q and len(out) < n:
                out.append(q.pop())
    return out


async def teacher_labels(
    teacher: Judge, sample: Sequence[Answer], store: Store, progress: bool
) -> list[GoldLabel | None]:
    """The teacher's label per answer (None where it could not decide: never guessed)."""
    verdicts = await judge_responses(teacher, [a.prompt for a in sample], [a.response for a in sample], store, progress)
    out: list[GoldLabel | None] = []
    for v in verdicts:
        label = None if v is None else v.label
        out.append(
            "compliance"
            if label == "compliance"
            else "full_refusal"
            if label == "full_refusal"
            else "partial_refusal"
            if label == "partial_refusal"
            else None
        )
    return out


def gold_labels(path: Path, sample: Sequence[Answer]) -> list[GoldLabel | None]:
    """Human labels from a viewer gold file, matched by response key (None for unlabelled answers)."""
    from overrefusal.judges.gold import BUILTIN_LABELS
    from overrefusal.viewer.gold import GoldFile

    if not path.is_file():
        raise BadInputError(f"{path} does not exist: give the gold file the viewer writes (--gold in `view`)")
    by_key: dict[str, GoldLabel] = {}
    for row in GoldFile(path).lines:
        key = row.get("response_key") or ""
        label = BUILTIN_LABELS.get((row.get("final_label") or "").strip().lower())
        if key and label is not None:
            by_key[key] = label
    if not by_key:
        raise BadInputError(f"{path} has no rows labelled in the viewer (with a response_key): label some first")
    return [by_key.get(a.response.key) for a in sample]


def split_by_prompt(
    sample: Sequence[Answer], labels: Sequence[GoldLabel | None], seed: int
) -> tuple[list[int], list[int]]:
    """Indices of labelled answers for training and held-out testing; whole prompts go to one side."""
    prompts = sorted({a.prompt.id for a, lab in zip(sample, labels, strict=True) if lab is not None})
    rng = random.Random(seed + 1)
    rng.shuffle(prompts)
    held = set(prompts[: max(1, round(len(prompts) * HOLDOUT_SHARE))]) if len(prompts) > 1 else set()
    train_rows = [i for i, (a, lab) in enumerate(zip(sample, labels, strict=True)) if lab and a.prompt.id not in held]
    test_rows = [i for i, (a, lab) in enumerate(zip(sample, labels, strict=True)) if lab and a.prompt.id in held]
    return train_rows, test_rows


def as_gold(sample: Sequence[Answer], labels: Sequence[GoldLabel | None], rows: Sequence[int]) -> GoldSet:
    """Labelled answers as a gold set (group ``distill``)."""
    kept = [(i, lab) for i in rows if (lab := labels[i]) is not None]
    items = tuple(JudgeItem(prompt=sample[i].prompt.text, response=sample[i].response) for i, _ in kept)
    return GoldSet(items, tuple(lab for _, lab in kept), tuple("distill" for _ in kept))


@dataclass(frozen=True)
class Distilled:
    """A distilled model and how it agrees with its teacher."""

    model: ClassifierModel
    held_out: Agreement | None
    """The model trained without the held-out prompts, against the teacher on them."""
    builtin_held_out: Agreement | None
    """The built-in classifier against the teacher on the same held-out answers."""
    n_labelled: int
    n_unlabelled: int


async def _agreement(judge: ClassifierJudge, gold: GoldSet) -> Agreement:
    verdicts = await judge.judge(list(gold.items))
    return agreement(gold.labels, [v.label for v in verdicts])


async def distill(
    sample: Sequence[Answer], labels: Sequence[GoldLabel | None], *, seed: int, meta: dict[str, object]
) -> Distilled:
    """Validate on held-out prompts, then train on the whole labelled sample (plus the built-in data)."""
    import numpy as np

    labelled_rows = [i for i, lab in enumerate(labels) if lab is not None]
    if len({labels[i] == "compliance" for i in labelled_rows}) < 2:
        raise BadInputError(
            "the teacher labelled fewer than two kinds of answer (refusal and compliance): sample more (--sample)"
        )
    train_rows, test_rows = split_by_prompt(sample, labels, seed)
    # the English answers the model reads, featurised once for both fits (teacher's labels first, then built-in)
    teacher = english_only(as_gold(sample, labels, labelled_rows))
    data = labelled([TrainSet(teacher, TEACHER_WEIGHT), TrainSet(english_only(builtin_sets()[0].gold))])
    held_prompts = {sample[i].prompt.id for i in test_rows}
    held_out = {k for k, item in enumerate(teacher.items) if item.response.prompt_id in held_prompts}
    fit_rows = np.asarray([k for k in range(len(data.refusal)) if k not in held_out], dtype=np.intp)
    held = builtin_held = None
    if test_rows and len(set(data.refusal[fit_rows].tolist())) == 2:
        student = ClassifierJudge.__new__(ClassifierJudge)
        student.model = fit(data.rows(fit_rows))
        test = as_gold(sample, labels, test_rows)
        held = await _agreement(student, test)
        builtin_held = await _agreement(ClassifierJudge(), test)
    model = fit(data, meta=meta)
    return Distilled(model, held, builtin_held, len(labelled_rows), len(labels) - len(labelled_rows))
