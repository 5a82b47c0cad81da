"""``generate rewrite``: rewrite every seed into N seemingly-toxic-but-benign prompts.

One call per seed asks for all N rewrites (a spread from close-to-the-seed to clearly ordinary,
as OR-Bench does). A seed whose output has no parsable rewrite is asked again with the next
attempt index, up to ``retries`` times. Candidates are deduplicated exactly across the project.
"""

from __future__ import annotations

from typing import Any

from overrefusal.generation.checks import Check, category_yield, share
from overrefusal.generation.common import Stage, close_all, funnel, record_id, run_async, user_query
from overrefusal.generation.copies import template_copy
from overrefusal.generation.parsing import normalise, parse_items
from overrefusal.generation.prompts import REWRITE_VERSION, rewrite_prompt
from overrefusal.generation.seeds import KIND as SEED_KIND
from overrefusal.records import Query, Response

KIND = "candidate"
STATS = ("seeds", "candidates", "duplicates", "failed_seeds", "items", "template_echo", "copied_example")


async def _rewrite(stage: Stage) -> dict[str, Any]:
    cfg = stage.config.rewrite
    seeds = stage.records.load(SEED_KIND)
    backend = stage.backend("rewriter", cfg.generator or stage.config.generator)
    outputs: dict[str, tuple[tuple[str, ...], Response]] = {}
    calls_per_seed = dict.fromkeys((s["id"] for s in seeds), 0)
    try:
        todo = list(seeds)
        for attempt in range(cfg.retries + 1):
            if not todo:
                break
            queries: list[Query] = [
                user_query(
                    f"rewrite:{s['id']}:{attempt}",
                    rewrite_prompt(s["text"], cfg.per_seed),
                    temperature=cfg.temperature,
                    max_tokens=cfg.max_tokens,
                    seed=attempt,
                )
                for s in todo
            ]
            responses = await stage.ask(backend, queries)
            retry = []
            for seed, response in zip(todo, responses, strict=True):
                calls_per_seed[seed["id"]] += 1
                items = parse_items(response.text, limit=cfg.per_seed).items if response.ok else ()
                outputs[seed["id"]] = (items, response)
                if not items:
                    retry.append(seed)
            todo = retry
    finally:
        await close_all([backend])
    candidates: list[dict[str, Any]] = []
    seen: set[str] = set()
    stats: dict[str, dict[str, int]] = {}
    for seed in seeds:
        cat = stats.setdefault(seed["category"], dict.fromkeys(STATS, 0))
        cat["seeds"] += 1
        items, response = outputs[seed["id"]]  # every seed is asked at least once
        if not items:
            cat["failed_seeds"] += 1
        cat["items"] += len(items)
        seen.add(normalise(seed["text"]))
        for index, item in enumerate(items):
            key = normalise(item)
            copy = template_copy(item)
            if copy is not None:  # a placeholder or a few-shot example of the template: never a candidate
                cat["template_echo" if copy == "echo" else "copied_example"] += 1
                continue
            if key in seen:
                cat["duplicates"] += 1
                continue
            seen.add(key)
            cat["candidates"] += 1
            candidates.append(
                {
                    "id": record_id(stage.config.project, KIND, item),
                    "text": item,
                    "category": seed["category"],
                    "seed_id": seed["id"],
                    "seed_text": seed["text"],
                    "rewrite_index": index,
                    "response_key": response.key,
                }
            )
    stage.records.replace(KIND, candidates)
    asked = {name: s["seeds"] * cfg.per_seed for name, s in stats.items()}
    return stage.report(
        "rewrite",
        checks=_checks(stage, stats, asked),
        funnel={
            name: funnel(
                asked[name],
                s["candidates"],
                {
                    "not_written": asked[name] - s["items"],
                    "duplicate": s["duplicates"],
                    "template_echo": s["template_echo"],
                    "copied_example": s["copied_example"],
                },
            )
            for name, s in stats.items()
        },
        prompt_version=REWRITE_VERSION,
        counts={name: s["candidates"] for name, s in stats.items()},
        per_category=stats,
        total=len(candidates),
        settings=cfg.model_dump(exclude={"generator"}),
    )


def _checks(stage: Stage, stats: dict[str, dict[str, int]], asked: dict[str, int]) -> list[Check]:
    cfg = stage.config.checks

    def total(key: str) -> int:
        return sum(s[key] for s in stats.values())

    stronger = "use a stronger generator (rewrite.generator)"
    return [
        share(
            "parse_failures",
            total("failed_seeds"),
            total("seeds"),
            cfg.parse_failures,
            cfg,
            "seeds got no readable rewrite",
            f"{stronger}, or raise rewrite.max_tokens if its outputs are cut off",
        ),
        share(
            "template_echo",
            total("template_echo"),
            total("items"),
            cfg.template_echo,
            cfg,
            "rewrites echo the template's placeholders (removed)",
            stronger,
        ),
        share(
            "copied_examples",
            total("copied_example"),
            total("items"),
            cfg.copied_examples,
            cfg,
            "rewrites copy the template's few-shot examples (removed)",
            stronger,
        ),
        category_yield("yield", {n: s["candidates"] for n, s in stats.items()}, asked, cfg, "candidates", stronger),
    ]


def run_rewrite(stage: Stage) -> dict[str, Any]:
    """Rewrite every seed of the project into candidates; returns the stage report."""
    return run_async(lambda: _rewrite(stage))
