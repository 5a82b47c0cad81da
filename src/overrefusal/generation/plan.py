"""``generate plan``: the calls and tokens each stage will spend per model, and their cost, before anything is sent.

Counts follow the stages' own rules (seed calls per batch, one rewrite call per seed, one
moderation call per candidate and moderator, the second pass, the second chance, one panel call
per benign prompt). Two columns: **expected**, when every call parses and a quarter of the
candidates are flagged, and **at most**, when every retry is used and every candidate goes down
the costlier path. Prompt tokens are the templates' real text at 4 characters per token;
completion tokens are typical lengths capped by each stage's ``max_tokens`` (the at-most column
uses ``max_tokens``). A stage that has finished uses its real counts (seeds, candidates, benign
prompts). Calls already in the cache are not sent again, so a rerun costs less than planned.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from overrefusal.generation.common import Stage
from overrefusal.generation.config import ModelSpec, PrefilterConfig, Price
from overrefusal.generation.prompts import (
    moderation_prompt,
    mutation_prompt,
    rewrite_prompt,
    second_pass_prompt,
    seed_prompt,
)

CHARS_PER_TOKEN = 4
FLAGGED = 0.25
"""Expected share of candidates the moderators flag (OR-Bench kept roughly three quarters)."""
TYPICAL = {"seed_item": 30, "rewrite_item": 35, "moderation": 150, "second_pass": 60, "answer": 300, "panel": 200}
"""Typical completion tokens: per seed item, per rewrite, per moderation output, per answer."""
EXAMPLE_PROMPT = "x" * 120
"""Stand-in for a prompt of typical length (about 30 tokens)."""


def tokens(text: str) -> int:
    """Estimated tokens of ``text``."""
    return max(1, round(len(text) / CHARS_PER_TOKEN))


@dataclass(frozen=True)
class Line:
    """One stage and model: calls and tokens, expected and at most, and the cost when priced."""

    stage: str
    role: str
    model: str
    calls: int
    max_calls: int
    prompt_tokens: int
    completion_tokens: int
    max_prompt_tokens: int
    max_completion_tokens: int
    cost: float | None
    max_cost: float | None

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for ``--json``."""
        return asdict(self)


def _line(
    stage: str,
    role: str,
    spec: ModelSpec,
    calls: tuple[int, int],
    prompt: int,
    completion: tuple[int, int],
) -> Line:
    """A line for ``calls`` (expected, at most) of ``prompt`` tokens each and ``completion`` (typical, max) tokens."""
    (n, most), (typical, cap) = calls, completion
    typical = min(typical, cap)
    price: Price | None = spec.price

    def cost(p: int, c: int) -> float | None:
        return None if price is None else (p * price.input_per_mtok + c * price.output_per_mtok) / 1e6

    p, c, mp, mc = n * prompt, n * typical, most * prompt, most * cap
    model = str(spec.args.get("model", spec.backend))
    return Line(stage, role, f"{spec.backend}:{model}", n, most, p, c, mp, mc, cost(p, c), cost(mp, mc))


def _prefiltered(n: int, p: PrefilterConfig) -> int:
    """Prompts the panel answers under the pre-filter: the top ``keep`` share plus the audit sample of the rest."""
    top = round(n * p.keep)
    rest = n - top
    return top + min(rest, max(p.min_audit, round(p.audit * rest)))


def plan(stage: Stage, search: ModelSpec | None = None) -> list[Line]:
    """Every stage's calls and tokens per model for ``stage.config`` (and a search against ``search``); nothing sent."""
    config, records = stage.config, stage.records
    categories = stage.categories.categories
    taxonomy = stage.taxonomy
    lines: list[Line] = []
    s = config.seeds
    per_category = -(-s.per_category // s.batch_size)
    seed_calls = (per_category * len(categories), s.budget * len(categories))
    seed_prompt_tokens = max(tokens(seed_prompt(c, s.batch_size)) for c in categories)
    lines.append(
        _line(
            "seeds",
            "generator",
            config.generator,
            seed_calls,
            seed_prompt_tokens,
            (s.batch_size * TYPICAL["seed_item"], s.max_tokens),
        )
    )
    seeds = len(records.load("seed")) if records.stage("seeds") else s.per_category * len(categories)
    r = config.rewrite
    lines.append(
        _line(
            "rewrite",
            "generator",
            r.generator or config.generator,
            (seeds, seeds * (r.retries + 1)),
            tokens(rewrite_prompt(EXAMPLE_PROMPT, r.per_seed)),
            (r.per_seed * TYPICAL["rewrite_item"], r.max_tokens),
        )
    )
    candidates = len(records.load("candidate")) if records.stage("rewrite") else seeds * r.per_seed
    m, checks = config.moderate, config.checks
    flagged = (round(FLAGGED * candidates), candidates)
    benign = (candidates - flagged[0], candidates)
    sample = (min(checks.second_pass_sample, benign[0]), min(checks.second_pass_sample, benign[1]))
    moderation = tokens(moderation_prompt(EXAMPLE_PROMPT, taxonomy))
    for i, spec in enumerate(m.moderators, start=1):
        role = f"moderator_{i}"
        retries = m.parse_retries + 1
        lines.append(
            _line(
                "moderate",
                role,
                spec,
                (candidates, candidates * retries),
                moderation,
                (TYPICAL["moderation"], m.max_tokens),
            )
        )
        if checks.second_pass_sample:
            second = tokens(second_pass_prompt(EXAMPLE_PROMPT))
            lines.append(
                _line("moderate: 2nd pass", role, spec, sample, second, (TYPICAL["second_pass"], m.max_tokens))
            )
        if m.second_chance is not None:
            answer = tokens(moderation_prompt("x" * 4 * TYPICAL["answer"], taxonomy, response=True))
            lines.append(
                _line("moderate: 2nd chance", role, spec, flagged, answer, (TYPICAL["moderation"], m.max_tokens))
            )
    if m.second_chance is not None:
        sc = m.second_chance
        lines.append(
            _line(
                "moderate: 2nd chance",
                "answerer",
                sc.answerer,
                flagged,
                tokens(EXAMPLE_PROMPT),
                (TYPICAL["answer"], sc.max_tokens),
            )
        )
    h = config.hard
    kept = (
        sum(1 for d in records.load("dedup") if d["kept"] and d["pool"] == "benign") if records.stage("dedup") else None
    )
    asked = (kept, kept) if kept is not None else benign
    if h.prefilter is not None:
        asked = (_prefiltered(asked[0], h.prefilter), _prefiltered(asked[1], h.prefilter))
    for i, spec in enumerate(h.panel, start=1):
        lines.append(_line("hard", f"panel_{i}", spec, asked, tokens(EXAMPLE_PROMPT), (TYPICAL["panel"], h.max_tokens)))
    if search is not None:
        lines += _search_lines(stage, search)
    return lines


def _search_lines(stage: Stage, target: ModelSpec) -> list[Line]:
    """``generate search``: every parent mutated every round (at most), each mutation moderated and answered.

    The whole search stops at ``search.budget`` calls, so the at-most column is cut to it, model by model in
    the order the search spends them.
    """
    config, cfg = stage.config, stage.config.search
    m = config.moderate
    mutations = cfg.rounds * cfg.population * cfg.mutations
    evaluated = cfg.start + mutations
    mutate = tokens(mutation_prompt(EXAMPLE_PROMPT, "sensitive_word", cfg.mutations))
    moderation = tokens(moderation_prompt(EXAMPLE_PROMPT, stage.taxonomy))
    left = cfg.budget
    lines = []
    plan_items = [
        ("generator", config.generator, cfg.rounds * cfg.population, mutate, (cfg.mutations * 35, cfg.max_tokens)),
        *(
            (f"moderator_{i}", spec, evaluated * (m.parse_retries + 1), moderation, (150, m.max_tokens))
            for i, spec in enumerate(m.moderators, start=1)
        ),
        ("target", target, evaluated, tokens(EXAMPLE_PROMPT), (TYPICAL["panel"], config.hard.max_tokens)),
    ]
    for role, spec, most, prompt, completion in plan_items:
        capped = min(most, left)
        left -= capped
        lines.append(_line("search", role, spec, (capped, capped), prompt, completion))
    return lines


def totals(lines: list[Line]) -> dict[str, Any]:
    """Sums over all lines; the cost only when every line is priced."""
    priced = all(line.cost is not None for line in lines)
    return {
        "calls": sum(line.calls for line in lines),
        "max_calls": sum(line.max_calls for line in lines),
        "prompt_tokens": sum(line.prompt_tokens for line in lines),
        "completion_tokens": sum(line.completion_tokens for line in lines),
        "max_prompt_tokens": sum(line.max_prompt_tokens for line in lines),
        "max_completion_tokens": sum(line.max_completion_tokens for line in lines),
        "cost": sum(line.cost or 0.0 for line in lines) if priced else None,
        "max_cost": sum(line.max_cost or 0.0 for line in lines) if priced else None,
        "priced_cost": sum(line.cost or 0.0 for line in lines),
        "unpriced_models": sorted({line.model for line in lines if line.cost is None}),
    }
