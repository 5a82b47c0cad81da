"""``generate search``: find the benign prompts one target model over-refuses, by mutation (after EvoRefuse).

Start: up to ``search.start`` benign prompts (the project's deduplicated benign pool, or a file),
moderated (only prompts the moderators' vote calls benign take part) and answered by the target.
Fitness: 1 when the target refuses (full or partial, by the configured judge), plus the
predictor's refusal probability when a predictor is given (so among prompts the target still
answers, the ones it nearly refuses rank first). The population is the ``population`` fittest.

Each round, every population member the target still answers is mutated by the generator
(operators in turn: rephrase, add a sensitive-looking word, change the context). A mutation is
**kept** only when the moderators still call it benign and it is fitter than its parent (the
target refuses it, or the predictor scores it higher). The next population is the fittest of
the old one and the kept mutations (elitist, so the population's refusal rate never falls).
Rounds and model calls are bounded (``rounds``, ``budget``); every model call is cached, so a
stopped search resumes for free. Every kept prompt records its lineage (parent, root, operator,
round). Output: the benign prompts the target refuses, in the OR-Bench layout.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from typing import Any

from overrefusal.atomic import write_atomic
from overrefusal.generation.checks import share
from overrefusal.generation.common import Stage, close_all, orbench_csv, record_id, run_async, user_query
from overrefusal.generation.config import ModelSpec
from overrefusal.generation.copies import template_copy
from overrefusal.generation.moderate import label_items
from overrefusal.generation.parsing import normalise, parse_items
from overrefusal.generation.prompts import MUTATE_VERSION, MUTATIONS, mutation_prompt
from overrefusal.generation.votes import decide
from overrefusal.judges import judges
from overrefusal.predictor import Predictor
from overrefusal.records import GenerateParams, Prompt, Query
from overrefusal.verdicts import judge_responses

KIND = "search"
OPERATORS = tuple(MUTATIONS)
REFUSED = ("full_refusal", "partial_refusal")


class _Search:
    """One search run: the models, the budget, and the individuals met so far."""

    def __init__(self, stage: Stage, target: ModelSpec, predictor: Predictor | None) -> None:
        self.stage = stage
        self.cfg = stage.config.search
        self.target = stage.backend("target", target)
        self.generator = stage.backend("generator", stage.config.generator)
        self.moderators = [
            stage.backend(f"moderator_{i + 1}", s) for i, s in enumerate(stage.config.moderate.moderators)
        ]
        self.judge = judges.create(stage.config.hard.judge, **stage.config.hard.judge_args)
        self.predictor = predictor
        self.seen: set[str] = set()
        self.stopped: str | None = None
        self.answers = 0
        self.unusable = 0

    @property
    def calls(self) -> int:
        usage = self.stage.usage
        return usage.requests_sent + usage.responses_cached

    def affordable(self, items: int, per_item: int) -> int:
        """How many of ``items`` fit in the budget when each may cost ``per_item`` calls."""
        left = self.cfg.budget - self.calls
        fit = max(0, min(items, left // max(1, per_item)))
        if fit < items and self.stopped is None:
            self.stopped = f"budget of {self.cfg.budget} calls reached"
        return fit

    async def close(self) -> None:
        await close_all([self.target, self.generator, *self.moderators])
        await self.judge.aclose()

    async def evaluate(self, people: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Moderate ``people``; the target answers the benign ones; fill in decision, refusal and fitness."""
        if not people:
            return []
        votes = await label_items(self.stage, self.moderators, [(p["id"], p["text"]) for p in people], response=False)
        for p in people:
            ballots = [v["vote"] for v in votes[p["id"]]]
            p["decision"] = decide(ballots, self.stage.config.moderate.vote)
            p["votes"] = ballots
        benign = [p for p in people if p["decision"] == "benign"]
        prompts = [Prompt(id=p["id"], text=p["text"], category=p["category"], label="benign") for p in benign]
        params = GenerateParams(temperature=0.0, max_tokens=self.stage.config.hard.max_tokens, seed=0)
        responses = await self.stage.ask(self.target, [Query.for_prompt(q, params) for q in prompts])
        verdicts = await judge_responses(self.judge, prompts, responses, self.stage.store, self.stage.progress)
        scores = self.predictor.score([p["text"] for p in benign]) if self.predictor else [0.0] * len(benign)
        for p, response, verdict, score in zip(benign, responses, verdicts, scores, strict=True):
            p["verdict"] = verdict.label if verdict is not None else ("error" if not response.ok else "unscored")
            p["refused"] = p["verdict"] in REFUSED
            p["score"] = round(score, 4) if self.predictor else None
            p["fitness"] = round(float(p["refused"]) + score, 6)
            p["response_key"] = response.key
            self.answers += 1
            self.unusable += p["verdict"] in ("error", "unscored")
        return benign

    async def mutate(self, parents: list[dict[str, Any]], round_: int) -> list[dict[str, Any]]:
        """Ask the generator for mutations of each parent (operators in turn); new texts only."""
        cfg = self.cfg
        queries, operators = [], []
        for index, parent in enumerate(parents):
            operator = OPERATORS[(round_ + index) % len(OPERATORS)]
            operators.append(operator)
            queries.append(
                user_query(
                    f"mutate:{parent['id']}:{round_}:{operator}",
                    mutation_prompt(parent["text"], operator, cfg.mutations),
                    temperature=cfg.temperature,
                    max_tokens=cfg.max_tokens,
                    seed=cfg.seed + round_,
                )
            )
        children = []
        for parent, operator, response in zip(
            parents, operators, await self.stage.ask(self.generator, queries), strict=True
        ):
            items = parse_items(response.text, limit=cfg.mutations).items if response.ok else ()
            for item in items:
                key = normalise(item)
                if key in self.seen or template_copy(item) is not None:
                    continue
                self.seen.add(key)
                children.append(
                    {
                        "id": record_id(self.stage.config.project, KIND, item),
                        "text": item,
                        "category": parent["category"],
                        "parent": parent["id"],
                        "root": parent["root"],
                        "operator": operator,
                        "round": round_,
                        "parent_fitness": parent["fitness"],
                    }
                )
        return children


def _start(stage: Stage, source: list[dict[str, str]] | None) -> list[dict[str, Any]]:
    rows = source if source is not None else _benign_pool(stage)
    picked = list(rows)
    random.Random(stage.config.search.seed).shuffle(picked)
    out: list[dict[str, Any]] = []
    for row in picked[: stage.config.search.start]:
        item_id = record_id(stage.config.project, KIND, row["text"])
        lineage = {"parent": None, "root": item_id, "operator": "start", "round": 0, "parent_fitness": None}
        out.append({"id": item_id, "text": row["text"], "category": row["category"], **lineage})
    return out


def _benign_pool(stage: Stage) -> list[dict[str, str]]:
    return [
        {"text": r["text"], "category": r["category"]}
        for r in stage.records.load("dedup")
        if r["kept"] and r["pool"] == "benign"
    ]


def _best(people: list[dict[str, Any]], size: int) -> list[dict[str, Any]]:
    return sorted(people, key=lambda p: -p["fitness"])[:size]


def _rate(population: list[dict[str, Any]]) -> float:
    return round(sum(p["refused"] for p in population) / len(population), 4) if population else 0.0


async def _search(stage: Stage, target: ModelSpec, source: list[dict[str, str]] | None) -> dict[str, Any]:
    cfg = stage.config.search
    predictor = Predictor.load(stage.config.path(cfg.predictor)) if cfg.predictor else None
    search = _Search(stage, target, predictor)
    k = len(search.moderators)
    kept: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []
    try:
        start = _start(stage, source)
        search.seen.update(normalise(p["text"]) for p in start)
        start = start[: search.affordable(len(start), k + 1)]
        evaluated = await search.evaluate(start)
        kept += evaluated
        population = _best(evaluated, cfg.population)
        history.append({"round": 0, "refusal_rate": _rate(population), "population": len(population), "kept": 0})
        for round_ in range(1, cfg.rounds + 1):
            parents = [p for p in population if not p["refused"]]
            if not parents:
                search.stopped = search.stopped or "every prompt of the population is refused"
                break
            parents = parents[: search.affordable(len(parents), 1 + cfg.mutations * (k + 1))]
            if not parents:
                break
            children = await search.evaluate(await search.mutate(parents, round_))
            fitter = [c for c in children if c["fitness"] > c["parent_fitness"]]
            kept += fitter
            population = _best(population + fitter, cfg.population)
            history.append(
                {
                    "round": round_,
                    "refusal_rate": _rate(population),
                    "population": len(population),
                    "mutations": len(children),
                    "kept": len(fitter),
                    "calls": search.calls,
                }
            )
    finally:
        await search.close()
    hard = [p for p in kept if p["refused"]]
    slug = "".join(ch if ch.isalnum() or ch in "._-" else "-" for ch in search.target.model)
    stage.records.replace(f"{KIND}:{slug}", kept)
    checks = stage.config.checks
    unusable = share(
        "parse_failures",
        search.unusable,
        search.answers,
        checks.parse_failures,
        checks,
        f"answers of the target {search.target.model} failed or were empty or unjudgeable",
        "check the target's server and hard.max_tokens",
    )
    files = write_outputs(stage, slug, kept)
    return stage.report(
        KIND,
        checks=[unusable],
        files=files,
        prompt_version=MUTATE_VERSION,
        target=dict(search.target.identity),
        target_slug=slug,
        history=history,
        stopped=search.stopped or f"{cfg.rounds} rounds done",
        counts={"start": len(start), "kept": len(kept), "refused": dict(Counter(p["category"] for p in hard))},
        total=len(hard),
        settings=cfg.model_dump(),
    )


def write_outputs(stage: Stage, slug: str, kept: list[dict[str, Any]]) -> list[str]:
    """The target's hard set in the OR-Bench layout (``prompt,category``) and every kept prompt's lineage."""
    out = stage.config.path(stage.config.export.output_dir)
    base = f"{stage.config.project}-search-{slug}"
    refused = [{"prompt": p["text"], "category": p["category"]} for p in kept if p["refused"]]
    write_atomic(out / f"{base}.csv", orbench_csv(refused))
    fields = ("id", "text", "category", "refused", "verdict", "score", "fitness", "parent", "root", "operator")
    lines = [json.dumps({f: p.get(f) for f in (*fields, "round", "votes")}, ensure_ascii=False) for p in kept]
    write_atomic(out / f"{base}-lineage.jsonl", "".join(line + "\n" for line in lines))
    return [f"{base}.csv", f"{base}-lineage.jsonl"]


def run_search(stage: Stage, target: ModelSpec, source: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """Search for prompts ``target`` over-refuses; returns the report (records under ``search:<model>``)."""
    return run_async(lambda: _search(stage, target, source))
