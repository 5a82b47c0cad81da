"""The comparative report: cells (model, variant, judge) side by side, in one self-contained HTML file.

Everything in the page is an aggregate computed while streaming the run folders (leaderboard, trade-off
scatter, per-category bars, Spearman, paired tests with their sentences), plus a handful of discordant
examples, so the page stays small and fast whatever the number of responses. Prompt and model text is
escaped by jinja2's autoescape.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from overrefusal.atomic import write_atomic
from overrefusal.errors import BadInputError, MissingDependencyError
from overrefusal.metrics import pool
from overrefusal.report.cells import Cell, aggregate, find_cell, is_hard, judging
from overrefusal.report.figures import _plotly, figures, x_stat
from overrefusal.report.pairs import McNemar, paired_tests
from overrefusal.report.reference import Reference, load_reference
from overrefusal.report.runs import RunFolder, read_row_at
from overrefusal.report.single import interval, pct

__all__ = ["Cell", "Comparison", "McNemar", "compare", "is_hard", "pool", "render_comparison", "write_report"]

_env = Environment(
    loader=PackageLoader("overrefusal.report", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters["pct"] = pct
_env.filters["interval"] = interval

EXAMPLES = 20
"""Discordant examples shown per McNemar pair (the first pair only)."""


@dataclass(frozen=True)
class Spearman:
    """Spearman rank correlation between over-refusal and toxic refusal rates across models."""

    n: int
    rho: float | None
    p_value: float | None
    note: str


@dataclass(frozen=True)
class Example:
    """A benign prompt one model refused and the other answered."""

    benchmark: str
    category: str
    prompt: str
    refused_by: str
    response_a: str
    response_b: str


@dataclass
class Comparison:
    """Everything the comparative page shows."""

    models: list[Cell]
    """The cells, one point of the scatter and one row of the leaderboard each."""
    benchmarks: list[str]
    """Benign benchmarks, ordinary sets first then hard sets."""
    categories: list[str]
    x_benchmark: str | None
    spearman: Spearman
    mcnemar: list[McNemar]
    examples: list[Example]
    example_pair: tuple[str, str] | None
    notes: list[str] = field(default_factory=list)
    """Cautions shown above the leaderboard (e.g. cells run on different benchmarks or judged differently)."""
    reference: Reference | None = None
    """Published points drawn on the scatter (``--reference``)."""

    @property
    def sentences(self) -> list[str]:
        """The paired comparisons in words, significant ones first."""
        return [t.sentence for t in sorted(self.mcnemar, key=lambda t: (not t.significant, t.p_holm))]


def _scipy_stats() -> Any:
    try:
        from scipy import stats
    except ImportError as exc:
        raise MissingDependencyError("the comparative report", "report", ["plotly", "scipy"]) from exc
    return stats


def judging_notes(runs: Sequence[RunFolder]) -> list[str]:
    """Warnings when the runs were judged differently, or answered with different samples or reasoning judging."""
    notes: list[str] = []
    judged: dict[str, list[str]] = {}
    for run in runs:
        judged.setdefault(judging(run), []).append(run.path.name)
    if len(judged) > 1:
        groups = []
        for key, names in judged.items():
            first = next(r for r in runs if judging(r) == key).summary.run
            args = f" {json.dumps(first.judge_args, sort_keys=True)}" if first.judge_args else ""
            groups.append(f"{first.judge} v{first.judge_version}{args}: {', '.join(names)}")
        notes.append(
            "The runs were judged differently (" + "; ".join(groups) + "): differences in rates may come from "
            "the judges. Re-judge with one judge: run the same commands again with the same --judge and -J options "
            "(answers come from the cache)."
        )
    samples = {r.summary.run.samples for r in runs}
    if len(samples) > 1:
        notes.append(
            f"The runs asked for different numbers of answers per prompt ({', '.join(map(str, sorted(samples)))}): "
            "their intervals differ in width for that reason."
        )
    return notes


def spearman(models: Sequence[Cell], x_benchmark: str | None) -> Spearman:
    """Spearman's rho of over-refusal vs toxic refusal over the models that have both rates."""
    pairs = []
    for m in models:
        x, y = x_stat(m, x_benchmark), m.toxic_refusal
        if x is not None and x.rate is not None and y is not None and y.rate is not None:
            pairs.append((x.rate, y.rate))
    if len(pairs) < 3:
        return Spearman(len(pairs), None, None, "needs 3 or more models with both rates")
    xs, ys = [p[0] for p in pairs], [p[1] for p in pairs]
    if len(set(xs)) == 1 or len(set(ys)) == 1:
        return Spearman(len(pairs), None, None, "undefined: one of the rates is the same for every model")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = _scipy_stats().spearmanr(xs, ys)
    return Spearman(len(pairs), float(result.statistic), float(result.pvalue), "")


def _examples(a: Cell, b: Cell, limit: int) -> list[Example]:
    picked: list[tuple[str, bool, tuple[int, int, int, int], tuple[int, int, int, int]]] = []
    for key, out_a in a.outcomes.items():
        out_b = b.outcomes.get(key)
        share_a, share_b = a.refused_share(key), b.refused_share(key)
        if "\x00benign\x00" not in key or out_b is None or share_a is None or share_b is None:
            continue
        if (share_a > 0.5) != (share_b > 0.5):
            picked.append((key, share_a > 0.5, out_a, out_b))
            if len(picked) >= limit:
                break
    examples = []
    for key, a_refused, (_r, _n, ia, oa), (_s, _m, ib, ob) in picked:
        row_a, row_b = read_row_at(a.runs[ia], oa), read_row_at(b.runs[ib], ob)
        examples.append(
            Example(
                benchmark=key.split("\x00", 1)[0],
                category=row_a.prompt.category,
                prompt=row_a.prompt.text,
                refused_by=a.label if a_refused else b.label,
                response_a=row_a.response.text if row_a.response else "",
                response_b=row_b.response.text if row_b.response else "",
            )
        )
    return examples


def compare(
    runs: Sequence[RunFolder],
    pair: tuple[str, str] | None = None,
    x_benchmark: str | None = None,
    on_run: Callable[[], None] | None = None,
    include_incomplete: bool = False,
    reference: str | None = None,
    resamples: int = 4000,
) -> Comparison:
    """Aggregate runs into a :class:`Comparison`: one cell per (model, variant, judge), paired tests of every pair.

    ``pair`` restricts the tests to two cells, each named by its label, its model or a unique part of its
    label. Incomplete runs are left out (and named in a note) unless ``include_incomplete``; included, their
    cells are marked incomplete. ``reference`` names published points to overlay (``orbench-2024``).
    """
    if not runs:
        raise BadInputError("no run folders given: pass one or more runs/<id>/ folders")
    published = load_reference(reference) if reference is not None else None
    left_out = [] if include_incomplete else [r for r in runs if r.summary.status != "complete"]
    runs = [r for r in runs if r not in left_out]
    if not runs:
        raise BadInputError(
            "every run given is incomplete (stopped early or too many failed requests): run them again to "
            "complete them, or pass --include-incomplete to compare them anyway"
        )
    cells, rerun_notes = aggregate(runs, on_run)
    if pair is not None:
        chosen = (find_cell(cells, pair[0]), find_cell(cells, pair[1]))
        if chosen[0] is chosen[1]:
            raise BadInputError(f"--pair names one cell twice ({chosen[0].label}): name two different cells")
        pairs = [chosen]
    else:
        pairs = list(itertools.combinations(cells, 2))
    benchmarks = sorted({b for m in cells for b in m.benign_by_benchmark}, key=lambda b: (is_hard(b), b))
    if x_benchmark is not None and x_benchmark not in benchmarks:
        raise BadInputError(f"--x-benchmark {x_benchmark!r} is not among the runs' benchmarks: {benchmarks}")
    notes = [
        f"Left out: {r.path.name} ({r.model} on {r.benchmark}) is incomplete ({r.summary.incomplete_reason}); "
        "pass --include-incomplete to show it."
        for r in left_out
    ]
    notes.extend(rerun_notes)
    if any(m.incomplete for m in cells):
        notes.append("Cells marked INCOMPLETE have runs whose rates cover only the prompts that got an answer.")
    if len({m.benchmarks for m in cells}) > 1:
        listed = "; ".join(f"{m.label}: {', '.join(m.benchmarks)}" for m in cells)
        notes.append(
            f"The cells were not run on the same benchmarks ({listed}): their pooled rates come from different "
            "prompts. Compare the per-benchmark columns, or draw the scatter with --x-benchmark NAME."
        )
    notes.extend(judging_notes(runs))
    if published is not None:
        notes.append(_reference_note(published, x_benchmark))
    tests = paired_tests(pairs, resamples=resamples)
    examples = _examples(pairs[0][0], pairs[0][1], EXAMPLES) if pairs else []
    return Comparison(
        models=cells,
        benchmarks=benchmarks,
        categories=sorted({c for m in cells for c in m.categories}),
        x_benchmark=x_benchmark,
        spearman=spearman(cells, x_benchmark),
        mcnemar=tests,
        examples=examples,
        example_pair=(pairs[0][0].label, pairs[0][1].label) if pairs else None,
        notes=notes,
        reference=published,
    )


def _reference_note(reference: Reference, x_benchmark: str | None) -> str:
    """Say what the published points measure, so a reader compares like with like."""
    hard = x_benchmark is not None and is_hard(x_benchmark)
    where = (
        ""
        if hard
        else " Your cells' x is not a hard set: run on or-bench-hard-1k and pass --x-benchmark or-bench-hard-1k to "
        "place them on the same axis."
    )
    return (
        f"Grey points: {reference.title}, x = rejection on {reference.x_benchmark}, y = rejection on "
        f"{reference.y_benchmark}, judged by the paper's {reference.judge}. Source: {reference.citation}{where}"
    )


_INIT_JS = """
(function () {
  var figs = JSON.parse(document.getElementById('figure-data').textContent);
  var config = {displaylogo: false, responsive: true};
  Object.keys(figs).forEach(function (name) {
    var el = document.getElementById('fig-' + name);
    Plotly.newPlot(el, figs[name].data, figs[name].layout, config).then(function () {
      el.setAttribute('data-drawn', '1');
    });
  });
})();
"""


def _script_json(value: Any) -> Markup:
    """JSON safe inside a <script type="application/json"> element: no '<', '>' or '&' characters."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _sha256(script: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")


def render_comparison(comp: Comparison) -> str:
    """Render the self-contained page (plotly's bundle inline; a CSP allows only its own two scripts)."""
    _, _, get_plotlyjs = _plotly()
    plotly_js = get_plotlyjs()
    csp = (
        "default-src 'none'; "
        f"script-src '{_sha256(plotly_js)}' '{_sha256(_INIT_JS)}'; "
        "style-src 'unsafe-inline'; img-src data:; font-src data:"
    )
    return _env.get_template("compare.html.j2").render(
        c=comp,
        csp=csp,
        plotly_js=Markup(plotly_js),
        init_js=Markup(_INIT_JS),
        figure_data=_script_json(figures(comp)),
        is_hard=is_hard,
    )


def write_report(
    runs: Sequence[RunFolder],
    output: Path,
    pair: tuple[str, str] | None = None,
    x_benchmark: str | None = None,
    on_run: Callable[[], None] | None = None,
    include_incomplete: bool = False,
    reference: str | None = None,
    resamples: int = 4000,
) -> Comparison:
    """Compare ``runs`` and write the page to ``output`` atomically; return the comparison."""
    comp = compare(
        runs,
        pair=pair,
        x_benchmark=x_benchmark,
        on_run=on_run,
        include_incomplete=include_incomplete,
        reference=reference,
        resamples=resamples,
    )
    page = render_comparison(comp)
    try:
        write_atomic(output, page)
    except OSError as exc:
        raise BadInputError(
            f"cannot write the report to {output} ({exc.strerror or exc}): pass a writable -o path"
        ) from None
    return comp
