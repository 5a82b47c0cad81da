"""Judge responses unless the store has their verdicts: the one verdict-cache layer.

Used by the runner and the generation stages. Verdicts are cached per judge configuration
(:attr:`Judge.key`) and per answer: the answer key hashes the response key with the text
judged, so an answer sent again (``--no-cache``) is judged again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from overrefusal.hashing import content_hash
from overrefusal.judges.base import Judge, JudgeItem
from overrefusal.progress import Bar
from overrefusal.records import Prompt, Response, Verdict
from overrefusal.store import Store

PROVIDER_JUDGE = "provider"
"""Judge name on verdicts for provider-side refusals."""
REASONING_JUDGE = "reasoning"
"""Judge name on ``unscored`` verdicts of answers that stopped inside their reasoning."""
TRUNCATED_IN_REASONING = "truncated in reasoning"

JUDGE_BATCH = 64
"""Items per call of :meth:`Judge.judge` (and per store commit)."""


class BulkJudge(Protocol):
    """Judges many chunks of items at once elsewhere (a Ray cluster), handing each chunk's verdicts back."""

    min_items: int
    """Fewer items than this are judged in this process (starting the bulk judge would cost more)."""

    async def judge(
        self,
        judge: Judge,
        chunks: Sequence[Sequence[JudgeItem]],
        deliver: Callable[[int, list[Verdict]], None],
    ) -> None:
        """Judge every chunk with a judge configured like ``judge``; ``deliver(chunk index, verdicts)`` each."""


def answer_key(response: Response) -> str:
    """Key of the judged text of ``response`` in the verdict cache."""
    return content_hash({"response": response.key, "text": response.text}, prefix="ans")


def forced_verdict(response: Response) -> Verdict | None:
    """The verdict no judge is asked about: a provider's refusal, or an answer that never left its reasoning."""
    refusal = response.provider_refusal or ("content_filter" if response.finish_reason == "content_filter" else None)
    if refusal is not None:
        return Verdict(
            response_key=response.key,
            prompt_id=response.prompt_id,
            label="provider_refusal",
            judge=PROVIDER_JUDGE,
            judge_version="2",
            reason=f"refused by the provider ({refusal})",
        )
    if response.ended_in_reasoning:
        return Verdict(
            response_key=response.key,
            prompt_id=response.prompt_id,
            label="unscored",
            judge=REASONING_JUDGE,
            judge_version="1",
            reason=TRUNCATED_IN_REASONING,
        )
    return None


def reasoning_view(response: Response) -> Response | None:
    """``response`` with its reasoning as the text to judge (``--judge-reasoning``); None without reasoning."""
    if not response.ok or not response.reasoning.strip():
        return None
    return response.model_copy(
        update={
            "text": response.reasoning,
            "reasoning": "",
            "ended_in_reasoning": False,
            "provider_refusal": None,
            "finish_reason": None,
        }
    )


async def judge_responses(
    judge: Judge,
    prompts: Sequence[Prompt],
    responses: Sequence[Response],
    store: Store,
    progress: bool = True,
    bulk: BulkJudge | None = None,
) -> list[Verdict | None]:
    """Judge each successful response (cached per judge configuration); errors get no verdict.

    The answers not judged before go to the judge in chunks of :data:`JUDGE_BATCH` (the same chunks
    in this process and on a ``bulk`` judge, so both decide alike); each chunk's verdicts are
    committed as they come.
    """
    judge.use_store(store)
    verdicts: dict[str, Verdict] = {}
    todo: dict[str, JudgeItem] = {}
    for prompt, response in zip(prompts, responses, strict=True):
        if not response.ok:
            continue
        forced = forced_verdict(response)
        if forced is not None:
            verdicts[answer_key(response)] = forced
        else:
            todo.setdefault(answer_key(response), JudgeItem(prompt=prompt.text, response=response, image=prompt.image))
    cached = store.get_verdicts(judge.key, list(todo))
    verdicts.update(cached)
    missing = [(key, item) for key, item in todo.items() if key not in cached]
    chunks = [missing[start : start + JUDGE_BATCH] for start in range(0, len(missing), JUDGE_BATCH)]
    with Bar(f"judging ({judge.name})", len(missing), enabled=progress) as bar:

        def take(index: int, judged: list[Verdict]) -> None:
            batch = chunks[index]
            if len(judged) != len(batch):
                raise RuntimeError(f"judge {judge.name} returned {len(judged)} verdicts for {len(batch)} items")
            pairs = [(key, verdict) for (key, _), verdict in zip(batch, judged, strict=True)]
            # a verdict that only says the judge failed is not kept: the next run asks again
            store.put_verdicts(judge.key, [(k, v) for k, v in pairs if not v.judge_failed])
            verdicts.update(pairs)
            for verdict in judged:
                bar.advance(error=verdict.label == "unscored")

        if bulk is not None and len(missing) >= bulk.min_items:
            await bulk.judge(judge, [[item for _, item in chunk] for chunk in chunks], take)
        else:
            for index, chunk in enumerate(chunks):
                take(index, await judge.judge([item for _, item in chunk]))
    out: list[Verdict | None] = []
    for prompt, response in zip(prompts, responses, strict=True):
        found = verdicts.get(answer_key(response)) if response.ok else None
        if found is not None and (found.prompt_id != prompt.id or found.response_key != response.key):
            found = found.model_copy(update={"prompt_id": prompt.id, "response_key": response.key})
        out.append(found)
    return out
