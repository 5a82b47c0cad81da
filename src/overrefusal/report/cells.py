"""Cells of a comparison: the runs of one (model, variant, judge), aggregated while streaming their folders.

A cell is what a point of the trade-off scatter and a row of the leaderboard show. Runs of one cell on
different benchmarks are pooled; a second run of one cell on one benchmark (a rerun) replaces the older one,
with a note, never an error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from overrefusal.errors import BadInputError
from overrefusal.metrics import RateStat, pool
from overrefusal.records import REFUSAL_LABELS
from overrefusal.report.runs import RunFolder, iter_response_dicts, verdict_labels


def is_hard(benchmark: str) -> bool:
    """Whether a benchmark is a "hard" set (OR-Bench-Hard style): its name contains ``hard``."""
    return "hard" in benchmark.lower()


def judging(run: RunFolder) -> str:
    """How a run was judged: its judge's configuration key (name and version for runs that predate it)."""
    info = run.summary.run
    return info.judge_key or f"{info.judge} v{info.judge_version} (configuration not recorded)"


CellKey = tuple[str, str, str]
"""(model, variant or "", judging key)."""


def cell_key(run: RunFolder) -> CellKey:
    """The cell a run belongs to."""
    return run.model, run.summary.run.variant or "", judging(run)


@dataclass
class Cell:
    """One (model, variant, judge) and what was streamed from its runs."""

    model: str
    variant: str | None
    judge: str
    """The judge's name."""
    runs: list[RunFolder]
    label: str = ""
    """The name shown in the page: the model, then the variant and the judge where they tell cells apart."""
    benign_by_benchmark: dict[str, RateStat] = field(default_factory=dict)
    over_refusal: RateStat | None = None
    toxic_refusal: RateStat | None = None
    categories: dict[str, tuple[RateStat, RateStat]] = field(default_factory=dict)
    """Category -> (benign, toxic), pooled over the cell's runs."""
    outcomes: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)
    """Pairing key (benchmark, label, prompt id) -> (answers refused, answers scored, run index, byte offset)."""

    def refused_share(self, key: str) -> float | None:
        """Share of the scored answers to the prompt ``key`` that refused (None: not scored)."""
        hit = self.outcomes.get(key)
        return None if hit is None or hit[1] == 0 else hit[0] / hit[1]

    @property
    def errors(self) -> int:
        """Failed requests over all runs."""
        return sum(s.errors for s in (self.over_refusal, self.toxic_refusal) if s is not None)

    @property
    def unscored(self) -> int:
        """Responses the judge could not decide, over all runs."""
        return sum(s.unscored for s in (self.over_refusal, self.toxic_refusal) if s is not None)

    @property
    def provider_refusals(self) -> int:
        """Prompts refused by the provider rather than the model, over all runs."""
        return sum(s.provider_refusal for s in (self.over_refusal, self.toxic_refusal) if s is not None)

    @property
    def incomplete(self) -> bool:
        """Whether one of the cell's runs is incomplete (its rates cover only the answered prompts)."""
        return any(r.summary.status != "complete" for r in self.runs)

    @property
    def judges(self) -> str:
        """The judge of the cell's runs, with its version."""
        return ", ".join(sorted({f"{r.summary.run.judge} v{r.summary.run.judge_version}" for r in self.runs}))

    @property
    def benchmarks(self) -> tuple[str, ...]:
        """The benchmarks of the cell's runs, sorted."""
        return tuple(sorted(r.benchmark for r in self.runs))


def group_runs(runs: Sequence[RunFolder]) -> tuple[dict[CellKey, list[RunFolder]], list[str]]:
    """Group runs by cell; of two runs of one cell on one benchmark the newer is kept, and a note says so."""
    groups: dict[CellKey, list[RunFolder]] = {}
    notes: list[str] = []
    for run in runs:
        group = groups.setdefault(cell_key(run), [])
        same = next((r for r in group if r.benchmark == run.benchmark), None)
        if same is None:
            group.append(run)
            continue
        newer, older = (
            (run, same)
            if (run.summary.run.created, run.path.name) > (same.summary.run.created, same.path.name)
            else (same, run)
        )
        group[group.index(same)] = newer
        notes.append(
            f"{older.path.name} and {newer.path.name} are two runs of {run.model}"
            f"{' (' + run.summary.run.variant + ')' if run.summary.run.variant else ''} on {run.benchmark} with the "
            f"same judge: the newer, {newer.path.name}, is shown."
        )
    return groups, notes


def _stream_outcomes(cell: Cell, on_run: Callable[[], None] | None) -> None:
    """Read each run's verdicts and responses once, keeping (refused, scored, where) per scored prompt."""
    for index, run in enumerate(cell.runs):
        verdicts = verdict_labels(run)
        for offset, row in iter_response_dicts(run):
            prompt, response = row.get("prompt") or {}, row.get("response")
            if not isinstance(response, dict) or response.get("error") is not None:
                continue
            verdict = verdicts.get(str(response.get("key")))
            if verdict is None or verdict[0] == "unscored":
                continue
            key = f"{run.benchmark}\x00{prompt.get('label')}\x00{prompt.get('id')}"
            refused, scored, first_index, first_offset = cell.outcomes.get(key, (0, 0, index, offset))
            cell.outcomes[key] = (refused + int(verdict[0] in REFUSAL_LABELS), scored + 1, first_index, first_offset)
        if on_run is not None:
            on_run()


def _labels(cells: list[Cell]) -> None:
    """Name each cell by its model, adding the variant and the judge only where they tell cells apart."""
    show_judge = len({c.judge for c in cells}) > 1 or len({judging(c.runs[0]) for c in cells}) > len(
        {c.judge for c in cells}
    )
    for cell in cells:
        parts = [cell.model]
        if cell.variant:
            parts.append(cell.variant)
        if show_judge:
            parts.append(cell.judge)
        cell.label = " · ".join(parts)
    seen: dict[str, int] = {}
    for cell in cells:
        seen[cell.label] = seen.get(cell.label, 0) + 1
    for cell in cells:  # one judge name under two configurations: its key tells them apart
        if seen[cell.label] > 1:
            cell.label += f" · {judging(cell.runs[0])[-6:]}"


def aggregate(runs: Sequence[RunFolder], on_run: Callable[[], None] | None = None) -> tuple[list[Cell], list[str]]:
    """Per-cell aggregates: rates from the summaries, paired outcomes streamed from the jsonl files.

    Returns the cells and notes about reruns that were replaced. ``on_run`` is called after each run
    folder has been read (for a progress bar).
    """
    groups, notes = group_runs(runs)
    cells: list[Cell] = []
    for (model, variant, _judging), group in groups.items():
        cell = Cell(model=model, variant=variant or None, judge=group[0].summary.run.judge, runs=group)
        for run in group:
            cell.benign_by_benchmark[run.benchmark] = run.summary.metrics.over_refusal
        # hard sets repeat prompts of their full set (OR-Bench-Hard-1k comes from OR-Bench-80K): pooling
        # them in would count prompts twice and make cells with an extra hard run look worse
        main = [r for r in group if not is_hard(r.benchmark)] or group
        cell.over_refusal = pool([r.summary.metrics.over_refusal for r in main])
        cell.toxic_refusal = pool([r.summary.metrics.toxic_refusal for r in group])
        per_cat: dict[str, tuple[list[RateStat], list[RateStat]]] = {}
        for run in group:
            for c in run.summary.metrics.categories:
                benign, toxic = per_cat.setdefault(c.category, ([], []))
                if run in main:
                    benign.append(c.benign)
                toxic.append(c.toxic)
        cell.categories = {c: (pool(b), pool(t)) for c, (b, t) in sorted(per_cat.items())}
        _stream_outcomes(cell, on_run)
        cells.append(cell)
    _labels(cells)
    return cells, notes


def find_cell(cells: Sequence[Cell], name: str, option: str = "--pair") -> Cell:
    """The cell ``name`` designates (see :func:`match_name`)."""
    return cells[match_name([c.label for c in cells], [c.model for c in cells], name, option)]


def match_name(labels: Sequence[str], models: Sequence[str], name: str, option: str) -> int:
    """Index of the label ``name`` designates: the full label, its model (when that model has one label), else parts.

    Parts are words that all occur in one label (``qwen helpful`` or ``qwen · helpful`` for
    ``qwen2.5-coder-0.5b-instruct · helpful``). A name matching several labels or none is a usage error that
    lists them.
    """
    for exact in ([i for i, x in enumerate(labels) if x == name], [i for i, m in enumerate(models) if m == name]):
        if len(exact) == 1:
            return exact[0]
        if len(exact) > 1:
            break
    words = [w for w in name.lower().replace("\u00b7", " ").split() if w]
    matches = [i for i, x in enumerate(labels) if words and all(w in x.lower() for w in words)]
    if len(matches) == 1:
        return matches[0]
    listed = "; ".join(labels[i] for i in matches) if matches else "; ".join(labels)
    if matches:
        raise BadInputError(f"{option} {name!r} matches several cells ({listed}): give more of the name")
    raise BadInputError(f"{option} {name!r} is not among the runs' cells ({listed}): give part of one of these names")
