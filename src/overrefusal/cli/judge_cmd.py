"""``overrefusal judge``: measure a judge against human labels, or train the classifier judge."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import click
from rich import box
from rich.console import Console
from rich.table import Table

from overrefusal.atomic import write_atomic
from overrefusal.cli.options import FiniteFloat, parse_kv
from overrefusal.errors import BadInputError
from overrefusal.judges import DEFAULT_JUDGE, Judge, judges
from overrefusal.judges.agreement import Agreement, agreement
from overrefusal.judges.gold import GOLD_LABELS, GoldSet, load_gold
from overrefusal.progress import Bar
from overrefusal.store import Store
from overrefusal.verdicts import JUDGE_BATCH


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


async def _judge_all(the_judge: Judge, gold: GoldSet, progress: bool) -> list[str]:
    labels: list[str] = []
    store = Store()  # judges that ask a model keep their replies here
    the_judge.use_store(store)
    try:
        with Bar(f"judging ({the_judge.name})", len(gold), enabled=progress) as bar:
            for start in range(0, len(gold), JUDGE_BATCH):
                batch = gold.items[start : start + JUDGE_BATCH]
                verdicts = await the_judge.judge(batch)
                labels.extend(v.label for v in verdicts)
                for v in verdicts:
                    bar.advance(error=v.label == "unscored")
    finally:
        await the_judge.aclose()
        store.close()
    return labels


@judge.command("eval")
@click.argument("gold_file", type=click.Path(path_type=Path))
@click.option("--judge", "-j", "judge_name", default=DEFAULT_JUDGE, show_default=True, help="Judge to measure.")
@click.option("-J", "judge_args", multiple=True, metavar="KEY=VALUE", help="Judge argument (repeatable).")
@_columns
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
@click.option("--no-progress", is_flag=True, help="Do not draw a progress bar.")
def eval_cmd(gold_file: Path, judge_name: str, judge_args: tuple[str, ...], **opts: Any) -> None:
    """Agreement of a judge with the human labels in GOLD_FILE (e.g. an XSTest completions CSV)."""
    gold = _gold(gold_file, opts)
    the_judge = judges.create(judge_name, **parse_kv(judge_args, "-J"))
    predicted = asyncio.run(_judge_all(the_judge, gold, not opts["no_progress"]))
    result = agreement(gold.labels, predicted)  # type: ignore[arg-type]
    stages = the_judge.stage_counts() if hasattr(the_judge, "stage_counts") else None
    if opts["as_json"]:
        out = {"judge": judge_name, "file": str(gold_file), **result.as_json()}
        if stages is not None:
            out["stages"] = stages
        click.echo(json.dumps(out))
        return
    print_agreement(judge_name, gold_file, result, stages)


def _pct(value: float | None) -> str:
    return "\u2014" if value is None else f"{value:.1%}"


def print_agreement(name: str, path: Path, a: Agreement, stages: dict[str, int] | None) -> None:
    """Print the agreement figures, the confusion matrix and per-class precision/recall."""
    console = Console(width=max(Console().width, 100))
    kappa = "\u2014" if a.kappa is None else f"{a.kappa:.3f}"
    console.print(f"judge {name} on {path} ({a.n} responses)", soft_wrap=True)
    console.print(
        f"3-class accuracy {_pct(a.three_class_accuracy)}   binary accuracy {_pct(a.binary_accuracy)}   "
        f"kappa {kappa}   partial recall {_pct(a.partial_recall)}   unscored {_pct(a.unscored_rate)}   "
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
@click.argument("labeled_file", type=click.Path(path_type=Path))
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Model file to write (.npz)."
)
@_columns
@click.option("--with-builtin-data", is_flag=True, help="Also train on the project's own labelled responses.")
@click.option("--c", "c", type=FiniteFloat(min=1e-6), default=None, help="Inverse regularisation [0.5].")
def train_cmd(labeled_file: Path, output: Path, with_builtin_data: bool, c: float | None, **opts: Any) -> None:
    """Train a classifier judge on LABELED_FILE; use it with `--judge classifier -J model=OUTPUT`."""
    from importlib.resources import as_file, files

    from overrefusal.judges.training import DEFAULT_C, TrainSet, train

    if output.suffix != ".npz":
        raise BadInputError(f"--output {output} must end in .npz")
    sets = [TrainSet(_gold(labeled_file, opts))]
    if with_builtin_data:
        with as_file(files("overrefusal.judges").joinpath("data/authored.csv")) as authored:
            sets.append(TrainSet(load_gold(authored)))
    model = train(sets, c=c or DEFAULT_C, meta={"trained_on": labeled_file.name})
    write_atomic(output, model.save)
    counts = model.meta.get("counts", {})
    click.echo(f"trained on {sum(counts.values())} responses {counts}; wrote {output}")
    click.echo(f"use it: overrefusal run --judge classifier -J model={output}")
