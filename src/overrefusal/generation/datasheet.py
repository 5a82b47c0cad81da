"""The datasheet of a generated benchmark: counts, per-category funnel, checks, models, tokens, diversity.

Written by ``generate export`` beside the files, and by any stage whose checks fail (then it says
which stage failed and why, and covers the stages up to that one).
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from overrefusal import __version__
from overrefusal.atomic import write_atomic
from overrefusal.generation.common import Stage

STAGE_NAMES = ("seeds", "rewrite", "moderate", "dedup", "hard", "search")
ORDER = ("seeds", "rewrite", "moderate", "dedup", "hard", "export")


def datasheet(
    stage: Stage, data: dict[str, list[dict[str, str]]] | None = None, failed: str | None = None
) -> dict[str, Any]:
    """Counts per category and stage, the funnel, checks, models, prompt versions, tokens and diversity."""
    last = ORDER.index(failed) if failed in ORDER else len(ORDER)
    names = [n for n in STAGE_NAMES if n == "search" or n not in ORDER or ORDER.index(n) <= last]
    found = {name: stage.records.stage(name) for name in names}
    reports = {k: v for k, v in found.items() if v is not None}
    counts: dict[str, dict[str, int]] = {}
    kinds = (("seeds", "seed", "seeds"), ("rewrite", "candidate", "candidates"))
    for name, kind, column in kinds:
        if name in reports:
            counts[column] = dict(Counter(r["category"] for r in stage.records.load(kind)))
    if "moderate" in reports:
        moderation = stage.records.load("moderation")
        for outcome in ("benign", "toxic", "undecided"):
            counts[f"moderated_{outcome}"] = dict(Counter(r["category"] for r in moderation if r["final"] == outcome))
        counts["restored_by_second_chance"] = dict(
            Counter(r["category"] for r in moderation if r["second_chance"] and r["second_chance"]["restored"])
        )
    for name, rows in (data or {}).items():
        counts[f"export_{name}"] = dict(Counter(r["category"] for r in rows))
    moderate, dedup, hard = (reports.get(n) or {} for n in ("moderate", "dedup", "hard"))
    return {
        "project": stage.config.project,
        "overrefusal_version": __version__,
        "status": f"failed at the {failed} stage" if failed else "complete",
        "categories": stage.categories.names,
        "counts": counts,
        "funnel": {name: r.get("funnel", {}) for name, r in reports.items()},
        "checks": {name: r.get("checks", []) for name, r in reports.items()},
        "stages": {
            name: {
                "finished": r.get("finished"),
                "status": r.get("status", "ok"),
                "models": r.get("models", {}),
                "prompt_version": r.get("prompt_version"),
                "usage": r.get("usage", {}),
            }
            for name, r in reports.items()
        },
        "vote_rule": moderate.get("vote_rule"),
        "abstentions": moderate.get("abstentions", {}),
        "dedup": {k: dedup.get(k) for k in ("embedder", "threshold", "exclusion_prompts")},
        "diversity": dedup.get("diversity", {}),
        "hard": {
            k: hard.get(k) for k in ("judge", "min_refusals", "seed", "panel_refusal_rates", "prefilter") if k in hard
        },
    }


def write_datasheet(
    stage: Stage, data: dict[str, list[dict[str, str]]] | None = None, failed: str | None = None
) -> list[str]:
    """Write ``datasheet.json`` and ``datasheet.md`` to the export folder; return their names."""
    sheet = datasheet(stage, data, failed)
    out = stage.config.path(stage.config.export.output_dir)
    write_atomic(out / "datasheet.json", json.dumps(sheet, indent=2, ensure_ascii=False) + "\n")
    write_atomic(out / "datasheet.md", datasheet_markdown(sheet))
    return ["datasheet.json", "datasheet.md"]


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def datasheet_markdown(sheet: dict[str, Any]) -> str:
    """Render the datasheet as Markdown."""
    counts: dict[str, dict[str, int]] = sheet["counts"]
    columns = list(counts)
    categories = sorted({c for per in counts.values() for c in per} | set(sheet["categories"]))
    count_rows = [[c, *[str(counts[col].get(c, 0)) for col in columns]] for c in categories]
    count_rows.append(["**total**", *[str(sum(counts[col].values())) for col in columns]])
    funnel_rows = []
    for category in categories:
        for name, per in sheet["funnel"].items():
            line = per.get(category)
            if line:
                why = ", ".join(f"{reason} {n}" for reason, n in sorted(line["dropped"].items())) or "-"
                funnel_rows.append([category, name, str(line["in"]), str(line["kept"]), why])
    check_rows = [
        [name, c["name"], "ok" if c["ok"] else "**FAILED**", _cell(c["message"])]
        for name, checks in sheet["checks"].items()
        for c in checks
    ]
    stage_rows = []
    for name, info in sheet["stages"].items():
        models = ", ".join(f"{role}={m.get('backend')}:{m.get('model')}" for role, m in info["models"].items())
        usage = info["usage"]
        stage_rows.append(
            [
                name,
                info.get("status", "ok"),
                info.get("prompt_version") or "-",
                _cell(models) or "-",
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
        f"Status: **{sheet['status']}**.",
        "## Checks",
        _table(["stage", "check", "result", "details"], check_rows),
        "## Counts per category and stage",
        _table(["category", *columns], count_rows),
        "## What each stage kept, per category, and why the rest went",
        _table(["category", "stage", "in", "kept", "dropped (why)"], funnel_rows),
        "## Stages, models, prompt versions and tokens",
        _table(
            [
                "stage",
                "status",
                "prompt version",
                "models",
                "requests sent",
                "cached",
                "prompt tokens",
                "completion tokens",
            ],
            stage_rows,
        ),
        f"Moderation vote rule: `{sheet['vote_rule']}`. Abstentions per moderator (unparsable or failed outputs, "
        f"never counted as benign or toxic): `{json.dumps(sheet['abstentions'])}`.",
        f"Deduplication: `{json.dumps(sheet['dedup'])}`. Hard selection: `{json.dumps(sheet['hard'])}`."
        if "dedup" in sheet["stages"]
        else "Deduplication and hard selection: not run.",
        "## Diversity of the benign set",
        _table(
            ["category", "prompts", "Self-BLEU (lower = more diverse)", "distinct-2", "mean pairwise cosine"],
            diversity_rows,
        ),
    ]
    return "\n\n".join(parts) + "\n"
