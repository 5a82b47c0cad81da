"""Run folders for report/viewer tests, written by the real ``write_run_dir``."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

from overrefusal.metrics import Outcome, compute
from overrefusal.records import CATEGORIES, GenerateParams, Prompt, Response, ResponseError, Verdict
from overrefusal.rundir import write_run_dir
from overrefusal.summary import RunInfo, Summary

XSS_SCRIPT = "<script>window.__pwned=1</script>"
XSS_IMG = '<img src=x onerror="window.__pwned=1">'

REFUSAL = "I'm sorry, but I can't help with that."


def make_run(
    parent: Path,
    model: str,
    benchmark: str = "starter",
    *,
    n_benign: int = 40,
    n_toxic: int = 20,
    p_benign: float = 0.2,
    p_toxic: float = 0.8,
    seed: int = 0,
    errors: int = 0,
    text: Callable[[Prompt, bool], str] | None = None,
    judge: str = "keywords",
    reasoning: Callable[[Prompt, bool], str] | None = None,
    variant: str | None = None,
    created: str = "2026-11-23T00:00:00+00:00",
    refuses: Callable[[Prompt], bool] | None = None,
) -> Path:
    """Write a run: each prompt refused with probability ``p_benign``/``p_toxic``; the first ``errors`` fail."""
    rng = random.Random(f"{seed}-{model}-{benchmark}")
    outcomes: list[Outcome] = []
    prompts = [
        Prompt(
            id=f"{label[0]}{i}",
            text=f"{label} prompt {i} about {CATEGORIES[i % len(CATEGORIES)]}",
            category=CATEGORIES[i % len(CATEGORIES)],
            label=label,  # type: ignore[arg-type]
            source=benchmark,
        )
        for label, n in (("benign", n_benign), ("toxic", n_toxic))
        for i in range(n)
    ]
    for index, prompt in enumerate(prompts):
        key = f"resp-{model}-{benchmark}-{prompt.id}"
        if index < errors:
            response = Response(
                key=key, prompt_id=prompt.id, model=model, error=ResponseError(kind="timeout", message="x")
            )
            outcomes.append(Outcome(prompt, response, None))
            continue
        refused = rng.random() < (p_benign if prompt.label == "benign" else p_toxic)
        if refuses is not None:
            refused = refuses(prompt)
        body = text(prompt, refused) if text else (REFUSAL if refused else f"Sure, here is how: {prompt.text}.")
        thought = reasoning(prompt, refused) if reasoning else ""
        response = Response(
            key=key, prompt_id=prompt.id, model=model, text=body, reasoning=thought, finish_reason="stop"
        )
        label = "full_refusal" if refused else "compliance"
        verdict = Verdict(response_key=key, prompt_id=prompt.id, label=label, judge=judge, judge_version="1")
        outcomes.append(Outcome(prompt, response, verdict))
    info = RunInfo(
        id=f"run-{model}-{benchmark}",
        created=created,
        overrefusal_version="0.1.0",
        benchmark=benchmark,
        backend="fake",
        model=model,
        backend_args={},
        variant=variant,
        judge=judge,
        judge_key=f"judge-{judge}",
        judge_version="1",
        params=GenerateParams(max_tokens=64),
        limit=None,
        prompts=len(prompts),
        requests_sent=len(prompts),
        responses_cached=0,
        prompt_tokens=0,
        completion_tokens=0,
        duration_s=0.0,
    )
    safe = "".join(ch if ch.isalnum() else "_" for ch in f"{model}-{benchmark}-{variant or ''}-{judge}")
    return write_run_dir(parent, safe, Summary(run=info, metrics=compute(outcomes)), outcomes)
