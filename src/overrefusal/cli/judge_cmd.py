"""``overrefusal judge``: measure a judge against human labels, or train the classifier judge."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich import box
from rich.console import Console
from rich.table import Table

from overrefusal.atomic import write_atomic
from overrefusal.cli.options import FiniteFloat, parse_kv
from overrefusal.errors import BadInputError
from overrefusal.judges import DEFAULT_JUDGE, Judge, judges
from overrefusal.judges.agreement import Agreement, agreement
from overrefusal.judges.gold import GOLD_LABELS, GoldLabel, GoldSet, load_gold
from overrefusal.progress import Bar
from overrefusal.store import Store
from overrefusal.verdicts import JUDGE_BATCH

if TYPE_CHECKING:
    from overrefusal.distill import Answer


def _columns(func: Any) -> Any:
    for decorator in reversed(
        [
            click.option("--prompt-column", default=None, help="Column with the prompt [prompt]."),
            click.option("--response-column", default=None, help="Column with the response [completion/response]."),
            click.option("--label-column", default=None, help="Column with the human label [final_label/label]."),
            click.option(
                "--label-map",
                "label_map",
                multiple=True,
                metavar="LABEL=CLASS",
                help="Map a label of the file to compliance, full_refusal or partial_refusal (repeatable).",
            ),
        ]
    ):
        func = decorator(func)
    return func


def _gold(path: Path, opts: dict[str, Any]) -> GoldSet:
    mapping: dict[str, str] = {}
    for pair in opts["label_map"]:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise BadInputError(f"--label-map {pair!r} is not LABEL=CLASS: write e.g. --label-map refused=full_refusal")
        mapping[key.strip()] = value.strip()
    return load_gold(
        path,
        prompt_column=opts["prompt_column"],
        response_column=opts["response_column"],
        label_column=opts["label_column"],
        label_map=mapping,
    )


@click.group()
def judge() -> None:
    """Measure judges against human labels and train the classifier judge."""


async def _judge_all(the_judge: Judge, gold: GoldSet, progress: bool) -> tuple[list[str], dict[str, int]]:
    labels: list[str] = []
    stages: dict[str, int] = {}
    store = Store()  # judges that ask a model keep their replies here
    the_judge.use_store(store)
    try:
        with Bar(f"judging ({the_judge.name})", len(gold), enabled=progress) as bar:
            for start in range(0, len(gold), JUDGE_BATCH):
                batch = gold.items[start : start + JUDGE_BATCH]
                verdicts = await the_judge.judge(batch)
                labels.extend(v.label for v in verdicts)
                for v in verdicts:
                    stage = the_judge.stage_of(v)
                    if stage is not None:
                        stages[stage] = stages.get(stage, 0) + 1
                    bar.advance(error=v.label == "unscored")
    finally:
        await the_judge.aclose()
        store.close()
    return labels, stages


@judge.command("eval")
@click.argument("gold_files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--judge", "-j", "judge_name", default=DEFAULT_JUDGE, show_default=True, help="Judge to measure.")
@click.option("-J", "judge_args", multiple=True, metavar="KEY=VALUE", help="Judge argument (repeatable).")
@_columns
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list (one object per file) instead of tables.")
@click.option("--no-progress", is_flag=True, help="Do not draw a progress bar.")
def eval_cmd(gold_files: tuple[Path, ...], judge_name: str, judge_args: tuple[str, ...], **opts: Any) -> None:
    """Agreement of a judge with the human labels in each GOLD_FILE (one row per file).

    Recognised layouts: XSTest completions, WildGuardTest, OpenAI's RBR gold set, MSTS, the
    viewer's gold file, or any file with prompt, response and label columns.
    """
    golds = [_gold(path, opts) for path in gold_files]  # every file checked before any judging
    the_judge = judges.create(judge_name, **parse_kv(judge_args, "-J"))
    rows: list[tuple[Path, GoldSet, Agreement, dict[str, int]]] = []
    for path, gold in zip(gold_files, golds, strict=True):
        predicted, stages = asyncio.run(_judge_all(the_judge, gold, not opts["no_progress"]))
        rows.append((path, gold, agreement(gold.labels, predicted), stages))  # type: ignore[arg-type]
    if opts["as_json"]:
        out = []
        for path, gold, result, stages in rows:
            item: dict[str, Any] = {"judge": judge_name, "file": str(path), **result.as_json()}
            if not gold.three_class:
                item.update(three_class_accuracy=None, partial_recall=None, labels="binary")
            if stages:
                item["stages"] = stages
            out.append(item)
        click.echo(json.dumps(out))
        return
    if len(rows) == 1:
        path, gold, result, stages = rows[0]
        print_agreement(judge_name, path, result, stages, three_class=gold.three_class)
        return
    print_rows(judge_name, rows)


def print_rows(name: str, rows: list[tuple[Path, GoldSet, Agreement, dict[str, int]]]) -> None:
    """One line of agreement figures per file."""
    table = Table(title=f"judge {name}", box=box.SIMPLE_HEAD)
    for heading in ("file", "n", "binary", "kappa", "3-class", "partial recall", "unscored"):
        table.add_column(heading, justify="left" if heading == "file" else "right")
    for path, gold, a, _stages in rows:
        kappa = "\u2014" if a.kappa is None else f"{a.kappa:.3f}"
        three = _pct(a.three_class_accuracy) if gold.three_class else "binary labels"
        partial = _pct(a.partial_recall) if gold.three_class else "\u2014"
        table.add_row(path.name, str(a.n), _pct(a.binary_accuracy), kappa, three, partial, _pct(a.unscored_rate))
    Console(width=max(Console().width, 100)).print(table)


def _pct(value: float | None) -> str:
    return "\u2014" if value is None else f"{value:.1%}"


def print_agreement(
    name: str, path: Path, a: Agreement, stages: dict[str, int] | None, *, three_class: bool = True
) -> None:
    """Print the agreement figures, the confusion matrix and per-class precision/recall."""
    console = Console(width=max(Console().width, 100))
    kappa = "\u2014" if a.kappa is None else f"{a.kappa:.3f}"
    console.print(f"judge {name} on {path} ({a.n} responses)", soft_wrap=True)
    three = _pct(a.three_class_accuracy) if three_class else "\u2014 (binary labels)"
    partial = _pct(a.partial_recall) if three_class else "\u2014"
    console.print(
        f"3-class accuracy {three}   binary accuracy {_pct(a.binary_accuracy)}   "
        f"kappa {kappa}   partial recall {partial}   unscored {_pct(a.unscored_rate)}   "
        f"(binary accuracy counting unscored as wrong {_pct(a.binary_accuracy_all)})"
    )
    matrix = Table(title="confusion (rows: human, columns: judge)", box=box.SIMPLE_HEAD)
    matrix.add_column("human \\ judge")
    for col in (*GOLD_LABELS, "unscored"):
        matrix.add_column(col, justify="right")
    for row in GOLD_LABELS:
        matrix.add_row(row, *(str(a.confusion[row][c]) for c in (*GOLD_LABELS, "unscored")))
    console.print(matrix)
    classes = Table(box=box.SIMPLE_HEAD)
    for heading in ("class", "precision", "recall", "support"):
        classes.add_column(heading, justify="right" if heading != "class" else "left")
    for c, s in a.classes.items():
        classes.add_row(c, _pct(s.precision), _pct(s.recall), str(s.support))
    console.print(classes)
    if stages:
        console.print("decided by: " + ", ".join(f"{k} {v}" for k, v in stages.items()))


@judge.command("train")
@click.argument("labeled_files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Model file to write (.npz)."
)
@_columns
@click.option("--with-builtin-data", is_flag=True, help="Also train on the project's own labelled responses.")
@click.option(
    "--c", "c", type=FiniteFloat(min=1e-6), default=None, help="Inverse regularisation [chosen by leave-file-out CV]."
)
def train_cmd(
    labeled_files: tuple[Path, ...], output: Path, with_builtin_data: bool, c: float | None, **opts: Any
) -> None:
    """Train a classifier judge on LABELED_FILES; use it with `--judge classifier -J model=OUTPUT`.

    Each file is one source: with three or more sources, regularisation and the cascade thresholds
    are chosen by leaving whole sources out.
    """
    from overrefusal.judges.training import TrainSet, builtin_sets, train

    if output.suffix != ".npz":
        raise BadInputError(f"--output {output} must end in .npz")
    sets = [TrainSet(_gold(path, opts)) for path in labeled_files]
    if with_builtin_data:
        sets += builtin_sets()
    model = train(sets, c=c, meta={"trained_on": [p.name for p in labeled_files]})
    write_atomic(output, model.save)
    click.echo(f"trained on {model.meta['n_train']} English responses (C={model.meta['c']}); wrote {output}")
    click.echo(f"use it: overrefusal run --judge classifier -J model={output}")


@judge.command("distill")
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--teacher",
    required=True,
    metavar="JUDGE|gold:FILE",
    help="The strong judge whose labels are learnt (e.g. llm, vote), or gold:FILE for the viewer's human labels.",
)
@click.option("-T", "teacher_args", multiple=True, metavar="KEY=VALUE", help="Teacher judge argument (repeatable).")
@click.option("--sample", "n", type=click.IntRange(min=20), default=500, show_default=True, help="Answers to label.")
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Model file to write (.npz)."
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sample and of the held-out split.")
@click.option("--json", "as_json", is_flag=True, help="Print the agreement figures as JSON.")
@click.option("--no-progress", is_flag=True, help="Do not draw a progress bar.")
def distill_cmd(
    runs: tuple[Path, ...],
    teacher: str,
    teacher_args: tuple[str, ...],
    n: int,
    output: Path,
    seed: int,
    as_json: bool,
    no_progress: bool,
) -> None:
    """Distil a classifier judge for the models of RUNS from a teacher's labels on a stratified sample.

    The teacher's verdicts are cached: run it again to resume. Prints the student's and the
    built-in judge's agreement with the teacher on held-out prompts, and writes the student.
    """
    from overrefusal.distill import distill, gold_labels, run_answers, stratified_sample

    if output.suffix != ".npz":
        raise BadInputError(f"--output {output} must end in .npz")
    sample = stratified_sample(run_answers(list(runs)), n, seed)
    if teacher.startswith("gold:"):
        labels = gold_labels(Path(teacher[5:]), sample)
    else:
        the_teacher = judges.create(teacher, **parse_kv(teacher_args, "-T"))
        store = Store()
        try:
            labels = asyncio.run(_teach(the_teacher, sample, store, not no_progress))
        finally:
            store.close()
    meta = {"distilled_from": teacher, "runs": [str(r) for r in runs], "sample": len(sample), "seed": seed}
    result = asyncio.run(distill(sample, labels, seed=seed, meta=meta))
    write_atomic(output, result.model.save)
    figures = {
        "teacher": teacher,
        "labelled": result.n_labelled,
        "teacher_unscored": result.n_unlabelled,
        "held_out": None if result.held_out is None else result.held_out.as_json(),
        "builtin_held_out": None if result.builtin_held_out is None else result.builtin_held_out.as_json(),
        "output": str(output),
    }
    if as_json:
        click.echo(json.dumps(figures))
        return
    click.echo(f"teacher {teacher} labelled {result.n_labelled} of {len(sample)} sampled answers")
    if result.n_unlabelled:
        click.echo(f"  {result.n_unlabelled} left out: the teacher could not decide (never guessed)")
    for what, a in (("distilled judge", result.held_out), ("built-in judge ", result.builtin_held_out)):
        if a is not None:
            kappa = "\u2014" if a.kappa is None else f"{a.kappa:.3f}"
            click.echo(
                f"  {what} vs teacher on {a.n} held-out answers: binary {_pct(a.binary_accuracy)}, kappa {kappa}, "
                f"3-class {_pct(a.three_class_accuracy)}"
            )
    click.echo(f"wrote {output}; use it: overrefusal run --judge classifier -J model={output}")


async def _teach(the_teacher: Judge, sample: Sequence[Answer], store: Store, progress: bool) -> list[GoldLabel | None]:
    from overrefusal.distill import teacher_labels

    try:
        return await teacher_labels(the_teacher, sample, store, progress)
    finally:
        await the_teacher.aclose()
