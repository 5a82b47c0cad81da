"""The viewer's index of run rows: small filter fields in memory, texts read from disk on demand.

Judge disagreement: a response's verdict sources are the run's own judge (``verdicts.jsonl``), the keyword
judge computed here on the fly, and a human label from the gold file when there is one. The response is in
disagreement when two decisive sources (not ``unscored``) differ on refusal (full or partial) vs compliance.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from overrefusal.images import FILE_NAME
from overrefusal.judges.keywords import KeywordJudge, normalise
from overrefusal.records import REFUSAL_LABELS, Image
from overrefusal.report.runs import RunFolder, iter_response_dicts, read_row_at, verdict_labels
from overrefusal.rundir import IMAGES
from overrefusal.viewer.gold import GOLD_TO_VERDICT, GoldFile, GoldRow

PAGE_MAX = 200
HEAD = 400
"""Characters of a response the keyword judge looks at (it matches openings only)."""


@dataclass(slots=True)
class Row:
    """Filter fields of one response row."""

    run: int
    offset: int
    model: str
    prompt_id: str
    category: str
    label: str
    response_key: str
    verdict: str
    """The run judge's label, or ``error`` / ``missing`` / ``unjudged``."""
    judge: str
    keyword: str
    """The keyword judge's label (``-`` when there is no response to judge)."""
    gold: str = ""
    disagree: bool = False


def _refusal(label: str) -> bool | None:
    if label in REFUSAL_LABELS:
        return True
    if label == "compliance":
        return False
    return None


def disagreement(row: Row) -> bool:
    """Whether two decisive verdict sources of ``row`` differ on refusal vs compliance."""
    votes = {_refusal(row.verdict), _refusal(row.keyword), _refusal(GOLD_TO_VERDICT.get(row.gold, ""))}
    votes.discard(None)
    return len(votes) > 1


class ViewerData:
    """All rows of the given runs, filterable and paged."""

    def __init__(self, runs: Sequence[RunFolder], gold: GoldFile, on_run: Callable[[], None] | None = None) -> None:
        """Stream every run once and judge each response with the keyword judge (``on_run`` after each run)."""
        self.runs = list(runs)
        self.gold = gold
        self.rows: list[Row] = []
        judge = KeywordJudge()
        phrases = tuple(judge.phrases)
        for index, run in enumerate(self.runs):
            verdicts = verdict_labels(run)
            for offset, obj in iter_response_dicts(run):
                prompt = obj.get("prompt") or {}
                response = obj.get("response")
                key, verdict, judge_name, keyword = "", "missing", "", "-"
                if isinstance(response, dict):
                    key = str(response.get("key", ""))
                    if response.get("error") is not None:
                        verdict = "error"
                    else:
                        text = str(response.get("text", ""))
                        if not text.strip():
                            keyword = "unscored"
                        else:
                            keyword = "full_refusal" if normalise(text[:HEAD]).startswith(phrases) else "compliance"
                        verdict, judge_name = verdicts.get(key, ("unjudged", ""))
                row = Row(
                    run=index,
                    offset=offset,
                    model=run.model,
                    prompt_id=str(prompt.get("id", "")),
                    category=sys.intern(str(prompt.get("category", ""))),
                    label=sys.intern(str(prompt.get("label", ""))),
                    response_key=key,
                    verdict=sys.intern(verdict),
                    judge=sys.intern(judge_name),
                    keyword=keyword,
                )
                stored = gold.get(key) if key else None
                row.gold = stored.final_label if stored else ""
                row.disagree = disagreement(row)
                self.rows.append(row)
            if on_run is not None:
                on_run()

    def meta(self) -> dict[str, Any]:
        """Filter choices and totals."""
        return {
            "models": sorted({r.model for r in self.runs}),
            "categories": sorted({r.category for r in self.rows}),
            "labels": sorted({r.label for r in self.rows}),
            "verdicts": sorted({r.verdict for r in self.rows}),
            "runs": [{"model": r.model, "benchmark": r.benchmark, "id": r.summary.run.id} for r in self.runs],
            "total": len(self.rows),
            "gold_file": self.gold.path.name,
        }

    def query(self, filters: dict[str, str], offset: int, limit: int) -> dict[str, Any]:
        """Rows matching every given filter (model, category, label, verdict, disagree, gold), one page."""
        model, category, label = filters.get("model"), filters.get("category"), filters.get("label")
        verdict, disagree, gold = filters.get("verdict"), filters.get("disagree"), filters.get("gold")
        limit = max(1, min(limit, PAGE_MAX))
        matched: list[int] = []
        total = 0
        for i, r in enumerate(self.rows):
            if (
                (model and r.model != model)
                or (category and r.category != category)
                or (label and r.label != label)
                or (verdict and r.verdict != verdict)
                or (disagree == "1" and not r.disagree)
                or (gold == "1" and not r.gold)
            ):
                continue
            if offset <= total < offset + limit:
                matched.append(i)
            total += 1
        return {"total": total, "offset": offset, "limit": limit, "rows": [self.detail(i) for i in matched]}

    def detail(self, index: int) -> dict[str, Any]:
        """One row with its texts (read from ``responses.jsonl`` at the stored offset)."""
        r = self.rows[index]
        full = read_row_at(self.runs[r.run], r.offset)
        response = full.response
        return {
            "row": index,
            "model": r.model,
            "benchmark": self.runs[r.run].benchmark,
            "prompt_id": r.prompt_id,
            "category": r.category,
            "label": r.label,
            "prompt": full.prompt.text,
            "response": response.text if response is not None else "",
            "reasoning": response.reasoning if response is not None else "",
            "truncated_in_reasoning": bool(response is not None and response.ended_in_reasoning),
            "provider_refusal": (response.provider_refusal or "") if response is not None else "",
            "sample": response.sample if response is not None else 0,
            "error": f"{response.error.kind}: {response.error.message}" if response and response.error else "",
            "prompt_image": self._picture(r.run, full.prompt.image),
            "response_image": self._picture(r.run, response.image if response is not None else None),
            "stimulus": full.prompt.stimulus,
            "verdict": r.verdict,
            "judge": r.judge,
            "keyword": r.keyword,
            "gold": r.gold,
            "disagree": r.disagree,
        }

    def image_path(self, run: int, name: str) -> Path | None:
        """The file ``images/<name>`` of run folder number ``run``; None unless it is one of its images."""
        if not 0 <= run < len(self.runs) or not FILE_NAME.match(name):
            return None
        folder = (self.runs[run].path / IMAGES).resolve()
        path = (folder / name).resolve()
        return path if path.parent == folder and path.is_file() else None

    def _picture(self, run: int, image: Image | None) -> dict[str, str] | None:
        """How the page shows an image of row's run: its URL on this server and its name (text only)."""
        if image is None or self.image_path(run, image.file_name) is None:
            return None
        return {"src": f"/api/image/{run}/{image.file_name}", "name": image.name}

    def relabel(self, index: int, final_label: str) -> dict[str, Any]:
        """Save a human label for row ``index`` to the gold file; return the updated row."""
        r = self.rows[index]
        full = read_row_at(self.runs[r.run], r.offset)
        self.gold.set(
            GoldRow(
                id=r.prompt_id,
                type=r.category,
                prompt=full.prompt.text,
                completion=full.response.text if full.response is not None else "",
                final_label=final_label,
                model=r.model,
                response_key=r.response_key,
            )
        )
        r.gold = final_label
        r.disagree = disagreement(r)
        return self.detail(index)
