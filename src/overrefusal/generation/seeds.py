"""``generate seeds``: ask the generator for batches of toxic seed prompts per category and top up to the target.

Rounds are deterministic: attempt ``i`` of a category always sends the same query (the attempt
index is the sampling seed), and its items are added in attempt order until the target is
reached. A rerun therefore replays the same attempts from the cache and sends only the ones
that had not finished.
"""

from __future__ import annotations

from typing import Any

from overrefusal.generation.checks import Check, category_yield, share
from overrefusal.generation.common import Stage, close_all, funnel, record_id, run_async, user_query
from overrefusal.generation.copies import template_copy
from overrefusal.generation.parsing import normalise, parse_items
from overrefusal.generation.prompts import SEED_VERSION, seed_prompt

KIND = "seed"


async def _generate(stage: Stage) -> dict[str, Any]:
    cfg = stage.config.seeds
    backend = stage.backend("generator", stage.config.generator)
    try:
        categories = stage.categories.categories
        seen: dict[str, set[str]] = {c.name: set() for c in categories}
        seeds: dict[str, list[dict[str, Any]]] = {c.name: [] for c in categories}
        attempts = dict.fromkeys(seen, 0)
        stats = {
            c.name: {"calls": 0, "unparsed": 0, "errors": 0, "duplicates": 0, "items": 0, "echo": 0, "surplus": 0}
            for c in categories
        }
        while True:
            batch = []
            for category in categories:
                have, used = len(seeds[category.name]), attempts[category.name]
                if have >= cfg.per_category or used >= cfg.budget:
                    continue
                needed = -(-(cfg.per_category - have) // cfg.batch_size)
                for attempt in range(used, min(used + needed, cfg.budget)):
                    query = user_query(
                        f"seed:{category.name}:{attempt}",
                        seed_prompt(category, cfg.batch_size),
                        temperature=cfg.temperature,
                        max_tokens=cfg.max_tokens,
                        seed=attempt,
                    )
                    batch.append((category.name, attempt, query))
            if not batch:
                break
            responses = await stage.ask(backend, [q for _, _, q in batch])
            for (name, attempt, _), response in zip(batch, responses, strict=True):
                attempts[name] = max(attempts[name], attempt + 1)
                stats[name]["calls"] += 1
                if not response.ok:
                    stats[name]["errors"] += 1
                    continue
                parsed = parse_items(response.text)
                if not parsed.items:
                    stats[name]["unparsed"] += 1
                for item in parsed.items:
                    key = normalise(item)
                    stats[name]["items"] += 1
                    if len(seeds[name]) >= cfg.per_category:
                        stats[name]["surplus"] += 1
                        continue
                    if template_copy(item) is not None:  # the template's placeholder, not a request
                        stats[name]["echo"] += 1
                        continue
                    if key in seen[name]:
                        stats[name]["duplicates"] += 1
                        continue
                    seen[name].add(key)
                    seeds[name].append(
                        {
                            "id": record_id(stage.config.project, KIND, f"{name}\n{item}"),
                            "text": item,
                            "category": name,
                            "attempt": attempt,
                            "parse": parsed.method,
                            "response_key": response.key,
                        }
                    )
    finally:
        await close_all([backend])
    records = [s for c in categories for s in seeds[c.name]]
    stage.records.replace(KIND, records)
    for name in stats:
        stats[name]["seeds"] = len(seeds[name])
        stats[name]["target_reached"] = int(len(seeds[name]) >= cfg.per_category)
    return stage.report(
        "seeds",
        checks=_checks(stage, stats),
        funnel={
            name: funnel(
                s["items"],
                s["seeds"],
                {"duplicate": s["duplicates"], "template_echo": s["echo"], "over_target": s["surplus"]},
            )
            for name, s in stats.items()
        },
        prompt_version=SEED_VERSION,
        counts={name: len(items) for name, items in seeds.items()},
        per_category=stats,
        total=len(records),
        settings=cfg.model_dump(),
    )


def _checks(stage: Stage, stats: dict[str, dict[str, int]]) -> list[Check]:
    cfg = stage.config.checks
    calls = sum(s["calls"] for s in stats.values())
    failed = sum(s["unparsed"] + s["errors"] for s in stats.values())
    items = sum(s["items"] for s in stats.values())
    echo = sum(s["echo"] for s in stats.values())
    fix = "use a stronger generator, or raise seeds.max_tokens if its outputs are cut off"
    return [
        share("parse_failures", failed, calls, cfg.parse_failures, cfg, "generator calls gave no readable item", fix),
        share(
            "template_echo",
            echo,
            items,
            cfg.template_echo,
            cfg,
            "items echo the template's placeholders",
            "the generator copies the format instead of writing requests; use a stronger generator",
        ),
        category_yield(
            "yield",
            {n: s["seeds"] for n, s in stats.items()},
            dict.fromkeys(stats, stage.config.seeds.per_category),
            cfg,
            "seeds",
            "raise seeds.max_calls_per_category or use a stronger generator",
        ),
    ]


def run_seeds(stage: Stage) -> dict[str, Any]:
    """Generate, parse, dedup and top up seeds for every category; returns the stage report."""
    return run_async(lambda: _generate(stage))
