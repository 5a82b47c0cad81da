"""``generate export``: each subset in the OR-Bench layout (``prompt,category``) plus a datasheet.

Subsets: ``benign`` (all kept benign prompts, like or-bench-80k), ``hard`` (like or-bench-hard-1k),
``toxic`` (the toxic control set, like or-bench-toxic) and ``toxic-all`` (the whole deduplicated
toxic pool). Files are ``<project>-<subset>.<csv|jsonl|parquet>``; every file is written to a
temporary name and renamed, so a file is either complete or absent.
"""

from __future__ import annotations

import csv
import importlib
import io
import json
from collections import Counter
from pathlib import Path
from typing import Any

from overrefusal import __version__
from overrefusal.atomic import write_atomic
from overrefusal.errors import MissingDependencyError
from overrefusal.generation.common import Stage
from overrefusal.generation.dedup import KIND as DEDUP_KIND
from overrefusal.generation.hard import KIND as HARD_KIND
from overrefusal.generation.hard import TOXIC_KIND

STAGE_NAMES = ("seeds", "rewrite", "moderate", "dedup", "hard")


def _csv(rows: list[dict[str, str]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["prompt", "category"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _parquet(path: Path, rows: list[dict[str, str]]) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise MissingDependencyError("parquet export", "parquet", ["pyarrow"]) from exc

    def write(tmp: Path) -> None:
        table = pa.table({"prompt": [r["prompt"] for r in rows], "category": [r["category"] for r in rows]})
        pq.write_table(table, tmp)

    write_atomic(path, write)


def _require(module: str, what: str, extra: str) -> None:
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(what, extra, [module]) from exc


def subsets(stage: Stage) -> dict[str, list[dict[str, str]]]:
    """The exported rows of each subset, in pipeline order."""
    dedup = stage.records.load(DEDUP_KIND)
    hard = stage.records.load(HARD_KIND)
    toxic = stage.records.load(TOXIC_KIND)

    def rows(items: list[dict[str, Any]]) -> list[dict[str, str]]:
        return [{"prompt": r["text"], "category": r["category"]} for r in items]

    return {
        "benign": rows([r for r in dedup if r["kept"] and r["pool"] == "benign"]),
        "hard": rows([r for r in hard if r["selected"]]),
        "toxic": rows([r for r in toxic if r["selected"]]),
        "toxic-all": rows([r for r in dedup if r["kept"] and r["pool"] == "toxic"]),
    }


def _save_to_disk(out: Path, data: dict[str, list[dict[str, str]]]) -> Path:
    try:
        import datasets
    except ImportError as exc:
        raise MissingDependencyError("save_to_disk", "hub", ["datasets"]) from exc
    target = out / "hf"
    for name, rows in data.items():
        features = datasets.Features({"prompt": datasets.Value("string"), "category": datasets.Value("string")})
        ds = (
            datasets.Dataset.from_list(rows, features=features)
            if rows
            else datasets.Dataset.from_dict({"prompt": [], "category": []}, features=features)
        )
        datasets.DatasetDict({"train": ds}).save_to_disk(str(target / name))
    return target


def run_export(stage: Stage) -> dict[str, Any]:
    """Write every subset in each configured format, the datasheet (Markdown + JSON), optionally save_to_disk."""
    cfg = stage.config.export
    out = stage.config.path(cfg.output_dir)
    project = stage.config.project
    # optional libraries are checked before anything is written, so a missing one leaves no mix of old and new files
    if "parquet" in cfg.formats:
        _require("pyarrow", "parquet export", "parquet")
    if cfg.save_to_disk:
        _require("datasets", "save_to_disk", "hub")
    data = subsets(stage)
    written: list[str] = []
    for name, rows in data.items():
        base = out / f"{project}-{name}"
        if "csv" in cfg.formats:
            write_atomic(base.with_suffix(".csv"), _csv(rows))
            written.append(base.with_suffix(".csv").name)
        if "jsonl" in cfg.formats:
            write_atomic(base.with_suffix(".jsonl"), "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
            written.append(base.with_suffix(".jsonl").name)
        if "parquet" in cfg.formats:
            _parquet(base.with_suffix(".parquet"), rows)
            written.append(base.with_suffix(".parquet").name)
    if cfg.save_to_disk:
        written.append(str(_save_to_disk(out, data).relative_to(out)))
    sheet = datasheet(stage, data)
    write_atomic(out / "datasheet.json", json.dumps(sheet, indent=2, ensure_ascii=False) + "\n")
    write_atomic(out / "datasheet.md", datasheet_markdown(sheet))
    written += ["datasheet.json", "datasheet.md"]
    return stage.report("export", output_dir=str(out), files=written, rows={k: len(v) for k, v in data.items()})


def datasheet(stage: Stage, data: dict[str, list[dict[str, str]]]) -> dict[str, Any]:
    """Counts per category and stage, models, prompt versions, tokens and diversity, as one JSON object."""
    reports = {name: stage.records.stage(name) for name in STAGE_NAMES}
    counts: dict[str, dict[str, int]] = {}
    seeds = stage.records.load("seed")
    counts["seeds"] = dict(Counter(r["category"] for r in seeds))
    counts["candidates"] = dict(Counter(r["category"] for r in stage.records.load("candidate")))
    moderation = stage.records.load("moderation")
    for outcome in ("benign", "toxic", "undecided"):
        counts[f"moderated_{outcome}"] = dict(Counter(r["category"] for r in moderation if r["final"] == outcome))
    counts["restored_by_second_chance"] = dict(
        Counter(r["category"] for r in moderation if r["second_chance"] and r["second_chance"]["restored"])
    )
    for name, rows in data.items():
        counts[f"export_{name}"] = dict(Counter(r["category"] for r in rows))
    return {
        "project": stage.config.project,
        "overrefusal_version": __version__,
        "categories": stage.categories.names,
        "counts": counts,
        "stages": {
            name: {
                "finished": r.get("finished"),
                "models": r.get("models", {}),
                "prompt_version": r.get("prompt_version"),
                "usage": r.get("usage", {}),
            }
            for name, r in reports.items()
            if r is not None
        },
        "vote_rule": (reports["moderate"] or {}).get("vote_rule"),
        "abstentions": (reports["moderate"] or {}).get("abstentions", {}),
        "dedup": {k: (reports["dedup"] or {}).get(k) for k in ("embedder", "threshold", "exclusion_prompts")},
        "diversity": (reports["dedup"] or {}).get("diversity", {}),
        "hard": {k: (reports["hard"] or {}).get(k) for k in ("judge", "min_refusals", "seed", "panel_refusal_rates")},
    }


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def datasheet_markdown(sheet: dict[str, Any]) -> str:
    """Render the datasheet as Markdown."""
    counts: dict[str, dict[str, int]] = sheet["counts"]
    columns = list(counts)
    categories = sorted({c for per in counts.values() for c in per} | set(sheet["categories"]))
    count_rows = [[c, *[str(counts[col].get(c, 0)) for col in columns]] for c in categories]
    count_rows.append(["**total**", *[str(sum(counts[col].values())) for col in columns]])
    stage_rows = []
    for name, info in sheet["stages"].items():
        models = ", ".join(f"{role}={m.get('backend')}:{m.get('model')}" for role, m in info["models"].items())
        usage = info["usage"]
        stage_rows.append(
            [
                name,
                info.get("prompt_version") or "-",
                models or "-",
                str(usage.get("requests_sent", 0)),
                str(usage.get("responses_cached", 0)),
                str(usage.get("prompt_tokens", 0)),
                str(usage.get("completion_tokens", 0)),
            ]
        )
    diversity_rows = [
        [c, str(d["prompts"]), str(d["self_bleu"]), str(d["distinct_2"]), str(d["mean_pairwise_cosine"])]
        for c, d in sheet["diversity"].items()
    ]
    parts = [
        f"# Datasheet: {sheet['project']}",
        f"Built with overrefusal {sheet['overrefusal_version']} following the OR-Bench method "
        "(Cui et al., arXiv 2405.20947). Files use the OR-Bench layout `prompt,category`.",
        "## Counts per category and stage",
        _table(["category", *columns], count_rows),
        "## Stages, models, prompt versions and tokens",
        _table(
            ["stage", "prompt version", "models", "requests sent", "cached", "prompt tokens", "completion tokens"],
            stage_rows,
        ),
        f"Moderation vote rule: `{sheet['vote_rule']}`. Abstentions per moderator (unparsable or failed outputs, "
        f"never counted as benign or toxic): `{json.dumps(sheet['abstentions'])}`.",
        f"Deduplication: `{json.dumps(sheet['dedup'])}`. Hard selection: `{json.dumps(sheet['hard'])}`.",
        "## Diversity of the benign set",
        _table(
            ["category", "prompts", "Self-BLEU (lower = more diverse)", "distinct-2", "mean pairwise cosine"],
            diversity_rows,
        ),
    ]
    return "\n\n".join(parts) + "\n"
