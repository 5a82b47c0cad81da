"""Writing a :class:`~overrefusal.pairs.PairSet`: JSONL, parquet or a ``datasets`` folder, with its dataset card."""

from __future__ import annotations

import importlib
from collections import Counter
from pathlib import Path
from typing import Literal

from overrefusal.atomic import write_atomic
from overrefusal.errors import BadInputError, MissingDependencyError
from overrefusal.pairs import DPO_COLUMNS, KINDS, SFT_COLUMNS, PairSet
from overrefusal.tables import save_dataset, write_jsonl, write_parquet

Layout = Literal["dpo", "sft"]
Container = Literal["jsonl", "parquet", "datasets"]


def container_of(path: Path, given: str | None) -> Container:
    """The file kind: given, else from the suffix (``.jsonl``, ``.parquet``; a folder for ``datasets``)."""
    if given in ("jsonl", "parquet", "datasets"):
        return given  # type: ignore[return-value]
    if path.suffix == ".jsonl":
        return "jsonl"
    if path.suffix == ".parquet":
        return "parquet"
    raise BadInputError(
        f"cannot tell the format of {path}: name it .jsonl or .parquet, or pass --to datasets for a datasets folder"
    )


def rows(pairs: PairSet, layout: Layout) -> tuple[list[dict[str, str]], tuple[str, ...]]:
    """The rows to write and their columns: DPO pairs, or the chosen side only (SFT, duplicates dropped)."""
    if layout == "dpo":
        return [p.row() for p in pairs.pairs], DPO_COLUMNS
    out: list[dict[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for pair in pairs.pairs:
        if (pair.prompt, pair.chosen.text) not in seen:
            seen.add((pair.prompt, pair.chosen.text))
            out.append(pair.sft_row())
    return out, SFT_COLUMNS


def card(pairs: PairSet, layout: Layout, count: int) -> str:
    """The dataset card (Markdown with a Hugging Face front matter): counts, sources, judges and the recipe."""
    kinds = Counter(p.kind for p in pairs.pairs)
    categories = sorted({p.category for p in pairs.pairs})
    table = ["| category | " + " | ".join(KINDS) + " | total |", "|---|" + "---|" * (len(KINDS) + 1)]
    for category in categories:
        counts = Counter(p.kind for p in pairs.pairs if p.category == category)
        table.append(f"| {category} | " + " | ".join(str(counts[k]) for k in KINDS) + f" | {sum(counts.values())} |")
    table.append("| **all** | " + " | ".join(str(kinds[k]) for k in KINDS) + f" | {len(pairs.pairs)} |")
    sources = [
        f"| {r.path.name} | {r.model} | {r.summary.run.variant or ''} | {r.benchmark} | "
        f"{r.summary.run.judge} v{r.summary.run.judge_version} | {r.summary.run.prompts} |"
        for r in pairs.runs
    ]
    found = ", ".join(f"{k} {pairs.candidates[k]}" for k in KINDS)
    balance = (
        f"Balanced: at most {pairs.benign_per_toxic:g} benign pair(s) per toxic pair (found before balancing: {found})."
        if pairs.balanced
        else f"Not balanced (--no-balance; found: {found}): check the share of toxic pairs before training."
    )
    what = (
        "preference pairs in TRL's DPO layout (`prompt`, `chosen`, `rejected`)"
        if layout == "dpo"
        else "supervised rows in TRL's prompt-completion layout (`prompt`, `completion`: the chosen side only)"
    )
    return "\n".join(
        [
            "---",
            "task_categories: [text-generation]",
            "tags: [over-refusal, dpo, safety, overrefusal]",
            "---",
            "",
            "# Over-refusal fix data",
            "",
            f"{count} {what}, written by `overrefusal export pairs` from judged runs.",
            "",
            "**Content warning:** the toxic prompts are real requests for harmful content; each of them is paired "
            "with a refusal as the preferred answer.",
            "",
            "## Recipe",
            "",
            "- `benign_refusal`: a benign prompt the target refused; chosen = a compliant answer from another cell.",
            "- `toxic_compliance`: a toxic prompt the target answered; chosen = a full refusal from another cell.",
            "- `toxic_anchor`: a toxic prompt the target refused and another cell answered; chosen = the refusal.",
            "- A toxic prompt's chosen answer is always a full refusal: no pair rewards complying with a toxic "
            "prompt. An answer is used only when every judge that judged it agrees"
            f" ({pairs.disagreements} answers left out for disagreeing judges).",
            f"- {balance}",
            "",
            f"Targets: {', '.join(pairs.targets)}. Judges: {', '.join(pairs.judges)}.",
            "",
            "## Counts per category",
            "",
            *table,
            "",
            "## Sources",
            "",
            "| run | model | variant | benchmark | judge | prompts |",
            "|---|---|---|---|---|---|",
            *sources,
            "",
        ]
    )


def _require(module: str, what: str, extra: str) -> None:
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(what, extra, [module]) from exc


def write_pairs(pairs: PairSet, output: Path, layout: Layout = "dpo", to: str | None = None) -> tuple[Path, Path, int]:
    """Write the rows and the card; return (data path, card path, rows written). Nothing is written on error."""
    container = container_of(output, to)
    if container == "parquet":
        _require("pyarrow", "parquet export", "parquet")
    if container == "datasets":
        _require("datasets", "datasets export", "hub")
    data, columns = rows(pairs, layout)
    if not data:
        raise BadInputError(
            "no pair to write: the cells agree on every prompt, or no other cell answered where the target failed "
            "(with balancing, benign pairs also need toxic pairs): add runs of other models or variants, or pass "
            "--no-balance"
        )
    text = card(pairs, layout, len(data))
    if container == "datasets":
        save_dataset(output, data, columns, card=text)
        return output, output / "README.md", len(data)
    card_path = output.with_name(output.stem + ".card.md")
    if container == "jsonl":
        write_jsonl(output, data)
    else:
        write_parquet(output, data, columns)
    write_atomic(card_path, text)
    return output, card_path, len(data)
