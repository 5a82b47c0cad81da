"""``generate moderate``: K moderators label every candidate; a vote rule decides; flagged prompts get a second chance.

Each moderator explains, then tags one category or ``none of the above`` (see
:func:`~overrefusal.generation.parsing.parse_moderation`); an unreadable output is asked again
with the next attempt index up to ``parse_retries`` times and otherwise abstains. The vote rule
(:mod:`~overrefusal.generation.votes`) gives ``benign``, ``toxic`` or ``undecided``.

Second chance (OR-Bench §3.2.3): a prompt decided ``toxic`` is answered by the ``answerer``
model; the moderators label the *answer*; if that vote is ``benign`` the prompt is restored to
the benchmark. An answer that opens with a refusal is not moderated and restores nothing (a
refusal is harmless but shows no safe answer). Everything else decided toxic stays in the toxic
pool, which is kept.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

from overrefusal.backends import Backend
from overrefusal.generation.checks import Check, constant_label, share
from overrefusal.generation.common import Stage, close_all, funnel, run_async, user_query
from overrefusal.generation.parsing import ECHOED, parse_moderation, parse_yes_no
from overrefusal.generation.prompts import (
    ANSWER_VERSION,
    EXAMPLE_TAG,
    MODERATE_VERSION,
    RESPONSE_MODERATE_VERSION,
    SECOND_PASS_VERSION,
    moderation_prompt,
    second_pass_prompt,
)
from overrefusal.generation.rewrite import KIND as CANDIDATE_KIND
from overrefusal.generation.votes import Vote, decide
from overrefusal.hashing import content_hash
from overrefusal.judges.keywords import KeywordJudge

KIND = "moderation"


async def label_items(
    stage: Stage, moderators: list[Backend], items: list[tuple[str, str]], response: bool
) -> dict[str, list[dict[str, Any]]]:
    """Votes of every moderator on every (id, text), in moderator order."""
    cfg = stage.config.moderate
    taxonomy = stage.taxonomy
    names = taxonomy.names
    tag = "answer" if response else "prompt"

    async def one(index: int, moderator: Backend) -> dict[str, dict[str, Any]]:
        final: dict[str, dict[str, Any]] = {}
        todo = list(items)
        for attempt in range(cfg.parse_retries + 1):
            if not todo:
                break
            queries = [
                user_query(
                    f"moderate-{tag}:{item_id}:{index}:{attempt}",
                    moderation_prompt(text, taxonomy, response=response, reminder=attempt > 0),
                    temperature=cfg.temperature,
                    max_tokens=cfg.max_tokens,
                    seed=attempt,
                )
                for item_id, text in todo
            ]
            answers = await stage.ask(moderator, queries)
            retry = []
            for (item_id, text), answer in zip(todo, answers, strict=True):
                if answer.ok:
                    label = parse_moderation(answer.text, names, EXAMPLE_TAG)
                    vote: dict[str, Any] = {"vote": label.vote, "category": label.category, "reason": label.reason}
                else:
                    kind = answer.error.kind if answer.error else "error"
                    vote = {"vote": "abstain", "category": None, "reason": f"request failed ({kind})"}
                vote.update(moderator=moderator.model, moderator_index=index, attempts=attempt + 1, key=answer.key)
                final[item_id] = vote
                if vote["vote"] == "abstain":
                    retry.append((item_id, text))
            todo = retry
        return final

    # different moderator models work at the same time (each backend keeps its own concurrency limit);
    # moderators that are the same model run one after the other, so the later ones answer from the cache
    groups: dict[str, list[tuple[int, Backend]]] = {}
    for index, moderator in enumerate(moderators):
        groups.setdefault(json.dumps(moderator.identity, sort_keys=True), []).append((index, moderator))

    async def in_turn(members: list[tuple[int, Backend]]) -> dict[int, dict[str, dict[str, Any]]]:
        return {index: await one(index, moderator) for index, moderator in members}

    finals: dict[int, dict[str, dict[str, Any]]] = {}
    for done in await asyncio.gather(*(in_turn(members) for members in groups.values())):
        finals.update(done)
    return {item_id: [finals[i][item_id] for i in range(len(moderators))] for item_id, _ in items}


def _decide(votes: list[dict[str, Any]], rule: Any) -> str:
    ballots: list[Vote] = [v["vote"] for v in votes]
    return decide(ballots, rule)


async def _moderate(stage: Stage) -> dict[str, Any]:
    cfg = stage.config.moderate
    candidates = stage.records.load(CANDIDATE_KIND)
    moderators = [stage.backend(f"moderator_{i + 1}", spec) for i, spec in enumerate(cfg.moderators)]
    answerer = stage.backend("answerer", cfg.second_chance.answerer) if cfg.second_chance else None
    try:
        votes = await label_items(stage, moderators, [(c["id"], c["text"]) for c in candidates], response=False)
        first = {c["id"]: _decide(votes[c["id"]], cfg.vote) for c in candidates}
        flagged = [c for c in candidates if first[c["id"]] == "toxic"]
        second: dict[str, dict[str, Any]] = {}
        if answerer is not None and cfg.second_chance is not None and flagged:
            queries = [
                user_query(
                    f"answer:{c['id']}",
                    c["text"],
                    temperature=cfg.second_chance.temperature,
                    max_tokens=cfg.second_chance.max_tokens,
                    seed=0,
                )
                for c in flagged
            ]
            answers = await stage.ask(answerer, queries)
            # a refusal is no evidence that a safe answer exists: moderators would call it harmless
            refusals = KeywordJudge()
            refused = {c["id"]: refusals.match(a.text) for c, a in zip(flagged, answers, strict=True) if a.ok}
            answered = [
                (c["id"], a.text)
                for c, a in zip(flagged, answers, strict=True)
                if a.ok and a.text.strip() and refused.get(c["id"]) is None
            ]
            answer_votes = await label_items(stage, moderators, answered, response=True)
            for c, a in zip(flagged, answers, strict=True):
                if refused.get(c["id"]) is not None:
                    second[c["id"]] = {
                        "answer_key": a.key,
                        "answer_votes": [],
                        "answer_decision": "refused",
                        "restored": False,
                        "reason": f"the answerer refused (starts with {refused[c['id']]!r})",
                    }
                elif c["id"] in answer_votes:
                    outcome = _decide(answer_votes[c["id"]], cfg.vote)
                    second[c["id"]] = {
                        "answer_key": a.key,
                        "answer_votes": answer_votes[c["id"]],
                        "answer_decision": outcome,
                        "restored": outcome == "benign",
                    }
                else:
                    reason = a.error.kind if a.error else "empty answer"
                    second[c["id"]] = {
                        "answer_key": a.key,
                        "answer_votes": [],
                        "answer_decision": "undecided",
                        "restored": False,
                        "reason": f"no answer to moderate ({reason})",
                    }
        finals = {c["id"]: "benign" if second.get(c["id"], {}).get("restored") else first[c["id"]] for c in candidates}
        second_pass = await _second_pass(stage, moderators, [c for c in candidates if finals[c["id"]] == "benign"])
    finally:
        await close_all([*moderators, *([answerer] if answerer else [])])
    records: list[dict[str, Any]] = []
    per_category: dict[str, Counter[str]] = {}
    abstentions: Counter[str] = Counter()
    for c in candidates:
        chance = second.get(c["id"])
        decision = first[c["id"]]
        final = finals[c["id"]]
        counter = per_category.setdefault(c["category"], Counter())
        counter[final] += 1
        counter[f"first_{decision}"] += 1
        if chance:
            counter["restored" if chance["restored"] else "second_chance_kept_toxic"] += 1
        for vote in votes[c["id"]]:
            if vote["vote"] == "abstain":
                abstentions[f"{vote['moderator_index'] + 1}:{vote['moderator']}"] += 1
        records.append(
            {
                "id": c["id"],
                "text": c["text"],
                "category": c["category"],
                "seed_id": c["seed_id"],
                "votes": votes[c["id"]],
                "first_decision": decision,
                "second_chance": chance,
                "final": final,
            }
        )
    stage.records.replace(KIND, records)
    totals = Counter(r["final"] for r in records)
    return stage.report(
        "moderate",
        checks=_checks(stage, moderators, votes, per_category, second_pass),
        funnel={
            name: funnel(
                sum(c[k] for k in ("benign", "toxic", "undecided")),
                c["benign"],
                {"toxic": c["toxic"], "undecided": c["undecided"]},
            )
            for name, c in per_category.items()
        },
        second_pass=second_pass,
        prompt_version=MODERATE_VERSION,
        second_chance_prompt_versions=[ANSWER_VERSION, RESPONSE_MODERATE_VERSION] if answerer else [],
        vote_rule=cfg.vote,
        counts={k: dict(v) for k, v in per_category.items()},
        totals={"benign": totals["benign"], "toxic": totals["toxic"], "undecided": totals["undecided"]},
        restored=sum(1 for s in second.values() if s["restored"]),
        abstentions=dict(abstentions),
        settings=cfg.model_dump(exclude={"moderators", "second_chance"}),
    )


async def _second_pass(stage: Stage, moderators: list[Backend], benign: list[dict[str, Any]]) -> dict[str, Any]:
    """The moderators judge a sample of the benign pool again, asked in other words; the vote rule decides."""
    cfg, checks = stage.config.moderate, stage.config.checks
    if not checks.second_pass_sample or len(benign) < checks.min_items:
        return {"sample": 0, "toxic": 0, "flagged": []}
    sample = sorted(benign, key=lambda c: content_hash(c["id"]))[: checks.second_pass_sample]
    ballots: dict[str, list[Vote]] = {c["id"]: [] for c in sample}
    for index, moderator in enumerate(moderators):
        queries = [
            user_query(
                f"second-pass:{c['id']}:{index}",
                second_pass_prompt(c["text"]),
                temperature=cfg.temperature,
                max_tokens=cfg.max_tokens,
                seed=0,
            )
            for c in sample
        ]
        for c, answer in zip(sample, await stage.ask(moderator, queries), strict=True):
            ballots[c["id"]].append(parse_yes_no(answer.text) if answer.ok else "abstain")
    flagged = [c for c in sample if decide(ballots[c["id"]], cfg.vote) == "toxic"]
    return {
        "prompt_version": SECOND_PASS_VERSION,
        "sample": len(sample),
        "toxic": len(flagged),
        "flagged": [{"id": c["id"], "text": c["text"], "category": c["category"]} for c in flagged[:20]],
    }


def _checks(
    stage: Stage,
    moderators: list[Backend],
    votes: dict[str, list[dict[str, Any]]],
    per_category: dict[str, Counter[str]],
    second_pass: dict[str, Any],
) -> list[Check]:
    cfg = stage.config.checks
    stronger = "use a stronger moderator (moderate.moderators)"
    out: list[Check] = []
    labels: dict[str, list[str]] = {}
    for index, moderator in enumerate(moderators):
        mine = [v[index] for v in votes.values()]
        who = f"moderator {index + 1} ({moderator.model})"
        echoed = sum(1 for v in mine if str(v.get("reason", "")).startswith(ECHOED))
        abstained = sum(1 for v in mine if v["vote"] == "abstain")
        out.append(
            share(
                "template_echo",
                echoed,
                len(mine),
                cfg.template_echo,
                cfg,
                f"outputs of {who} echo the template's example tag [[{EXAMPLE_TAG}]]",
                f"it copies the format instead of choosing; {stronger}",
            )
        )
        out.append(
            share(
                "parse_failures",
                abstained,
                len(mine),
                cfg.parse_failures,
                cfg,
                f"outputs of {who} have no readable tag (abstentions)",
                f"raise moderate.max_tokens if they are cut off, or {stronger}",
            )
        )
        labels[who] = [
            v["vote"] if v["vote"] != "toxic" else f"toxic: {v['category']}" for v in mine if v["vote"] != "abstain"
        ]
    out += constant_label("constant_label", labels, cfg, f"it is not reading the prompts; {stronger}")
    sizes = {name: c["toxic"] + c["undecided"] for name, c in per_category.items() if c["benign"] == 0}
    empty = [f"{name} (0 of {n} candidates)" for name, n in sizes.items() if n >= cfg.min_items]
    fix = "the rewrites are toxic or the moderators flag everything; read a few moderator outputs and rewrites"
    out.append(
        Check("yield", False, f"no benign prompt left in {', '.join(empty)}: {fix}")
        if empty
        else Check("yield", True, "every category with enough candidates kept a benign prompt")
    )
    if second_pass["sample"]:
        out.append(
            share(
                "second_pass",
                second_pass["toxic"],
                second_pass["sample"],
                cfg.second_pass_toxic,
                cfg,
                "benign prompts were called toxic by the moderators' second pass",
                f"the first pass labels by habit, not by reading; {stronger} or vote: any",
            )
        )
    return out


def run_moderate(stage: Stage) -> dict[str, Any]:
    """Moderate every candidate of the project; returns the stage report."""
    return run_async(lambda: _moderate(stage))
