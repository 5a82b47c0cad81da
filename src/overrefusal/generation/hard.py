"""``generate hard``: a panel of models answers every kept benign prompt; prompts refused by >= k form the hard pool.

Refusal is decided by a registered judge (``keywords`` by default) through
:func:`overrefusal.verdicts.judge_responses`, so verdicts are cached too. Errors and ``unscored``
verdicts never count as refusals. Then a category-balanced hard subset of the target size and a
category-balanced toxic control set (from the deduplicated toxic pool) are sampled with a seed.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from typing import Any

from overrefusal.generation import prefilter
from overrefusal.generation.checks import Check, share
from overrefusal.generation.common import Stage, close_all, funnel, run_async
from overrefusal.generation.dedup import KIND as DEDUP_KIND
from overrefusal.judges import judges
from overrefusal.predictor import Predictor
from overrefusal.records import GenerateParams, Prompt, Query
from overrefusal.verdicts import judge_responses

KIND = "hard"
TOXIC_KIND = "toxic_control"


def balanced_sample(rows: Sequence[dict[str, Any]], size: int, seed: int) -> list[dict[str, Any]]:
    """Up to ``size`` rows spread evenly over categories (round-robin over seeded shuffles), in input order.

    A category with fewer rows than its share gives the rest to the others.
    """
    by_category: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_category.setdefault(row["category"], []).append(row)
    rng = random.Random(seed)
    queues = []
    for category in sorted(by_category):
        items = sorted(by_category[category], key=lambda r: str(r["id"]))
        rng.shuffle(items)
        queues.append(items)
    chosen: set[str] = set()
    depth = 0
    while len(chosen) < size and any(depth < len(q) for q in queues):
        for queue in queues:
            if depth < len(queue) and len(chosen) < size:
                chosen.add(queue[depth]["id"])
        depth += 1
    return [r for r in rows if r["id"] in chosen]


async def _panel(stage: Stage, prompts: list[Prompt]) -> dict[str, dict[str, str]]:
    """Verdict label of each panel model (by model name) for each prompt id."""
    cfg = stage.config.hard
    judge = judges.create(cfg.judge, **cfg.judge_args)
    labels: dict[str, dict[str, str]] = {p.id: {} for p in prompts}
    params = GenerateParams(temperature=cfg.temperature, max_tokens=cfg.max_tokens, seed=0)
    models = [stage.backend(f"panel_{i + 1}", spec) for i, spec in enumerate(cfg.panel)]
    try:
        await judge.check()  # a judge that cannot load fails before the panel is asked anything
        for backend in models:
            backend.check()
        for index, backend in enumerate(models):
            queries = [Query.for_prompt(p, params) for p in prompts]
            responses = await stage.ask(backend, queries)
            verdicts = await judge_responses(judge, prompts, responses, stage.store, stage.progress)
            name = f"{index + 1}:{backend.model}"
            for prompt, response, verdict in zip(prompts, responses, verdicts, strict=True):
                if verdict is None:
                    labels[prompt.id][name] = "error" if not response.ok else "unscored"
                else:
                    labels[prompt.id][name] = verdict.label
    finally:
        await close_all(models)
        await judge.aclose()
    return labels


async def _hard(stage: Stage) -> dict[str, Any]:
    cfg = stage.config.hard
    kept = [r for r in stage.records.load(DEDUP_KIND) if r["kept"]]
    benign = [r for r in kept if r["pool"] == "benign"]
    toxic = [r for r in kept if r["pool"] == "toxic"]
    prompts = [Prompt(id=r["id"], text=r["text"], category=r["category"], label="benign") for r in benign]
    roles: dict[str, str] = {}
    if cfg.prefilter is not None and prompts:
        predictor = Predictor.load(stage.config.path(cfg.prefilter.predictor))  # a bad file fails before any call
        scores = predictor.score([p.text for p in prompts])
        roles = prefilter.select([p.id for p in prompts], scores, cfg.prefilter, cfg.seed)
    asked = [p for p in prompts if roles.get(p.id) != "skipped"]
    labels = await _panel(stage, asked) if cfg.panel else {}
    rows: list[dict[str, Any]] = []
    for r in benign:
        per_model = labels.get(r["id"], {})
        refusals = sum(1 for label in per_model.values() if label in ("full_refusal", "partial_refusal"))
        rows.append(
            {
                "id": r["id"],
                "text": r["text"],
                "category": r["category"],
                "verdicts": per_model,
                "refusals": refusals,
                "hard": bool(cfg.panel) and refusals >= cfg.min_refusals,
                "prefilter": roles.get(r["id"]),
            }
        )
    pool = [r for r in rows if r["hard"]]
    chosen = {r["id"] for r in balanced_sample(pool, cfg.size, cfg.seed)}
    for r in rows:
        r["selected"] = r["id"] in chosen
    toxic_rows = [{"id": r["id"], "text": r["text"], "category": r["category"]} for r in toxic]
    toxic_chosen = {r["id"] for r in balanced_sample(toxic_rows, cfg.toxic_size, cfg.seed)}
    for r in toxic_rows:
        r["selected"] = r["id"] in toxic_chosen
    stage.records.replace(KIND, rows)
    stage.records.replace(TOXIC_KIND, toxic_rows)
    refused = ("full_refusal", "partial_refusal")
    answered = [r for r in rows if r["verdicts"]]
    refusal_rates = {
        name: round(sum(1 for r in answered if r["verdicts"].get(name) in refused) / len(answered), 4)
        for name in (answered[0]["verdicts"] if answered else {})
    }
    lines: dict[str, Counter[str]] = {}
    for r in rows:
        outcome = "hard" if r["hard"] else "skipped" if r["prefilter"] == "skipped" else "refused_by_fewer"
        lines.setdefault(r["category"], Counter())[outcome] += 1
    cost = prefilter.recall(roles, {r["id"] for r in rows if r["hard"]}) if roles else None
    return stage.report(
        "hard",
        checks=_checks(stage, rows),
        funnel={
            name: funnel(
                sum(c.values()),
                c["hard"],
                {"refused_by_fewer_than_k": c["refused_by_fewer"], "skipped_by_prefilter": c["skipped"]},
            )
            for name, c in lines.items()
        },
        prefilter=cost,
        judge=cfg.judge,
        min_refusals=cfg.min_refusals,
        seed=cfg.seed,
        panel_refusal_rates=refusal_rates,
        counts={
            "hard_pool": dict(Counter(r["category"] for r in pool)),
            "hard": dict(Counter(r["category"] for r in rows if r["selected"])),
            "toxic_control": dict(Counter(r["category"] for r in toxic_rows if r["selected"])),
        },
        settings=cfg.model_dump(exclude={"panel", "judge_args"}),
    )


def _checks(stage: Stage, rows: list[dict[str, Any]]) -> list[Check]:
    cfg = stage.config.checks
    out = []
    answered = [r for r in rows if r["verdicts"]]
    for name in answered[0]["verdicts"] if answered else {}:
        asked = [r["verdicts"][name] for r in rows if name in r["verdicts"]]
        empty = sum(1 for label in asked if label in ("error", "unscored"))
        out.append(
            share(
                "parse_failures",
                empty,
                len(asked),
                cfg.parse_failures,
                cfg,
                f"answers of panel model {name} failed or were empty or unjudgeable",
                "check the panel model's server and hard.max_tokens",
            )
        )
    return out


def run_hard(stage: Stage) -> dict[str, Any]:
    """Run the panel, select the hard subset and the toxic control set; returns the stage report."""
    return run_async(lambda: _hard(stage))
