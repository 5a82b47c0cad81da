"""The comparative report: several models' runs side by side, in one self-contained HTML file.

Everything in the page is an aggregate computed while streaming the run folders (leaderboard, trade-off
scatter, per-category bars, Spearman, McNemar), plus a handful of discordant examples, so the page stays
small and fast whatever the number of responses. Prompt and model text is escaped by jinja2's autoescape.
"""

from __future__ import annotations

import base64
import hashlib
import html
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
from overrefusal.metrics import RateStat, pool
from overrefusal.records import REFUSAL_LABELS
from overrefusal.report.runs import RunFolder, iter_response_dicts, read_row_at, verdict_labels
from overrefusal.report.single import interval, pct

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


def is_hard(benchmark: str) -> bool:
    """Whether a benchmark is a "hard" set (OR-Bench-Hard style): its name contains ``hard``."""
    return "hard" in benchmark.lower()


@dataclass
class ModelAgg:
    """One model's runs and what was streamed from them."""

    model: str
    runs: list[RunFolder]
    benign_by_benchmark: dict[str, RateStat] = field(default_factory=dict)
    over_refusal: RateStat | None = None
    toxic_refusal: RateStat | None = None
    categories: dict[str, tuple[RateStat, RateStat]] = field(default_factory=dict)
    """Category -> (benign, toxic), pooled over the model's runs."""
    outcomes: dict[str, tuple[bool, int, int]] = field(default_factory=dict)
    """Pairing key (benchmark, label, prompt id) -> (refused, run index, byte offset) for scored responses."""

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
        """Whether one of the model's runs is incomplete (its rates cover only the answered prompts)."""
        return any(r.summary.status != "complete" for r in self.runs)

    @property
    def judges(self) -> str:
        """The judges of the model's runs."""
        return ", ".join(sorted({f"{r.summary.run.judge} v{r.summary.run.judge_version}" for r in self.runs}))


@dataclass(frozen=True)
class McNemar:
    """Paired McNemar test of two models' refusals on the prompts both answered and both were scored."""

    a: str
    b_model: str
    label: str
    """``benign`` (over-refusal) or ``toxic``."""
    n: int
    """Paired prompts."""
    both: int
    neither: int
    b: int
    """Refused by ``a`` only."""
    c: int
    """Refused by ``b_model`` only."""
    statistic: float
    """Continuity-corrected chi-square, (|b - c| - 1)^2 / (b + c); 0 when b + c = 0."""
    p_value: float
    """Exact two-sided p-value: binomial test of b successes in b + c trials at 1/2."""


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

    models: list[ModelAgg]
    benchmarks: list[str]
    """Benign benchmarks, ordinary sets first then hard sets."""
    categories: list[str]
    x_benchmark: str | None
    spearman: Spearman
    mcnemar: list[McNemar]
    examples: list[Example]
    example_pair: tuple[str, str] | None
    notes: list[str] = field(default_factory=list)
    """Cautions shown above the leaderboard (e.g. models run on different benchmarks)."""


def _scipy_stats() -> Any:
    try:
        from scipy import stats
    except ImportError as exc:
        raise MissingDependencyError("the comparative report", "report", ["plotly", "scipy"]) from exc
    return stats


def _judging(run: RunFolder) -> str:
    """How a run was judged: its judge's configuration key (name and version for runs that predate it)."""
    info = run.summary.run
    return info.judge_key or f"{info.judge} v{info.judge_version} (configuration not recorded)"


def judging_notes(runs: Sequence[RunFolder]) -> list[str]:
    """Warnings when the runs were judged differently, or answered with different samples or reasoning judging."""
    notes: list[str] = []
    judged: dict[str, list[str]] = {}
    for run in runs:
        judged.setdefault(_judging(run), []).append(run.path.name)
    if len(judged) > 1:
        groups = []
        for key, names in judged.items():
            first = next(r for r in runs if _judging(r) == key).summary.run
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


def group_runs(runs: Sequence[RunFolder]) -> dict[str, list[RunFolder]]:
    """Group runs by model; two runs of one model on one benchmark are an error."""
    groups: dict[str, list[RunFolder]] = {}
    for run in runs:
        same = [r for r in groups.get(run.model, []) if r.benchmark == run.benchmark]
        if same:
            raise BadInputError(
                f"model {run.model!r} has two runs on benchmark {run.benchmark!r} ({same[0].path.name}, "
                f"{run.path.name}): give one run per model and benchmark"
            )
        groups.setdefault(run.model, []).append(run)
    return groups


def _stream_outcomes(agg: ModelAgg, on_run: Callable[[], None] | None) -> None:
    """Read each run's verdicts and responses once, keeping only (refused, where) per scored prompt."""
    for index, run in enumerate(agg.runs):
        verdicts = verdict_labels(run)
        for offset, row in iter_response_dicts(run):
            prompt, response = row.get("prompt") or {}, row.get("response")
            if not isinstance(response, dict) or response.get("error") is not None:
                continue
            verdict = verdicts.get(str(response.get("key")))
            if verdict is None or verdict[0] == "unscored":
                continue
            key = f"{run.benchmark}\x00{prompt.get('label')}\x00{prompt.get('id')}"
            agg.outcomes[key] = (verdict[0] in REFUSAL_LABELS, index, offset)
        if on_run is not None:
            on_run()


def aggregate(runs: Sequence[RunFolder], on_run: Callable[[], None] | None = None) -> list[ModelAgg]:
    """Per-model aggregates: rates from the summaries, paired outcomes streamed from the jsonl files.

    ``on_run`` is called after each run folder has been read (for a progress bar).
    """
    models: list[ModelAgg] = []
    for model, group in group_runs(runs).items():
        agg = ModelAgg(model=model, runs=group)
        for run in group:
            agg.benign_by_benchmark[run.benchmark] = run.summary.metrics.over_refusal
        # hard sets repeat prompts of their full set (OR-Bench-Hard-1k comes from OR-Bench-80K): pooling
        # them in would count prompts twice and make models with an extra hard run look worse
        main = [r for r in group if not is_hard(r.benchmark)] or group
        agg.over_refusal = pool([r.summary.metrics.over_refusal for r in main])
        agg.toxic_refusal = pool([r.summary.metrics.toxic_refusal for r in group])
        per_cat: dict[str, tuple[list[RateStat], list[RateStat]]] = {}
        for run in group:
            for c in run.summary.metrics.categories:
                benign, toxic = per_cat.setdefault(c.category, ([], []))
                if run in main:
                    benign.append(c.benign)
                toxic.append(c.toxic)
        agg.categories = {c: (pool(b), pool(t)) for c, (b, t) in sorted(per_cat.items())}
        _stream_outcomes(agg, on_run)
        models.append(agg)
    return models


def mcnemar(a: ModelAgg, b: ModelAgg, label: str) -> McNemar:
    """Exact McNemar test on the prompts of ``label`` both models answered and both had scored."""
    stats = _scipy_stats()
    counts = {(True, True): 0, (True, False): 0, (False, True): 0, (False, False): 0}
    marker = f"\x00{label}\x00"
    for key, (refused_a, _i, _o) in a.outcomes.items():
        if marker not in key:
            continue
        other = b.outcomes.get(key)
        if other is not None:
            counts[(refused_a, other[0])] += 1
    only_a, only_b = counts[(True, False)], counts[(False, True)]
    discordant = only_a + only_b
    statistic = (abs(only_a - only_b) - 1) ** 2 / discordant if discordant else 0.0
    p_value = float(stats.binomtest(only_a, discordant, 0.5).pvalue) if discordant else 1.0
    return McNemar(
        a=a.model,
        b_model=b.model,
        label=label,
        n=sum(counts.values()),
        both=counts[(True, True)],
        neither=counts[(False, False)],
        b=only_a,
        c=only_b,
        statistic=statistic,
        p_value=p_value,
    )


def _x_stat(agg: ModelAgg, x_benchmark: str | None) -> RateStat | None:
    if x_benchmark is None:
        return agg.over_refusal
    return agg.benign_by_benchmark.get(x_benchmark)


def spearman(models: Sequence[ModelAgg], x_benchmark: str | None) -> Spearman:
    """Spearman's rho of over-refusal vs toxic refusal over the models that have both rates."""
    pairs = []
    for m in models:
        x, y = _x_stat(m, x_benchmark), m.toxic_refusal
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


def _examples(a: ModelAgg, b: ModelAgg, limit: int) -> list[Example]:
    picked: list[tuple[str, bool, tuple[bool, int, int], tuple[bool, int, int]]] = []
    for key, out_a in a.outcomes.items():
        out_b = b.outcomes.get(key)
        if "\x00benign\x00" in key and out_b is not None and out_a[0] != out_b[0]:
            picked.append((key, out_a[0], out_a, out_b))
            if len(picked) >= limit:
                break
    examples = []
    for key, a_refused, (_r, ia, oa), (_s, ib, ob) in picked:
        row_a, row_b = read_row_at(a.runs[ia], oa), read_row_at(b.runs[ib], ob)
        examples.append(
            Example(
                benchmark=key.split("\x00", 1)[0],
                category=row_a.prompt.category,
                prompt=row_a.prompt.text,
                refused_by=a.model if a_refused else b.model,
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
) -> Comparison:
    """Aggregate runs into a :class:`Comparison` (McNemar for every pair of models, or only ``pair``).

    Incomplete runs are left out (and named in a note) unless ``include_incomplete``; included, their
    models are marked incomplete.
    """
    if not runs:
        raise BadInputError("no run folders given: pass one or more runs/<id>/ folders")
    left_out = [] if include_incomplete else [r for r in runs if r.summary.status != "complete"]
    runs = [r for r in runs if r not in left_out]
    if not runs:
        raise BadInputError(
            "every run given is incomplete (stopped early or too many failed requests): run them again to "
            "complete them, or pass --include-incomplete to compare them anyway"
        )
    models = aggregate(runs, on_run)
    by_name = {m.model: m for m in models}
    if pair is not None:
        for name in pair:
            if name not in by_name:
                raise BadInputError(f"--pair model {name!r} is not among the runs' models: {sorted(by_name)}")
        if pair[0] == pair[1]:
            raise BadInputError("--pair needs two different models")
        pairs = [(by_name[pair[0]], by_name[pair[1]])]
    else:
        pairs = list(itertools.combinations(models, 2))
    benchmarks = sorted({b for m in models for b in m.benign_by_benchmark}, key=lambda b: (is_hard(b), b))
    if x_benchmark is not None and x_benchmark not in benchmarks:
        raise BadInputError(f"--x-benchmark {x_benchmark!r} is not among the runs' benchmarks: {benchmarks}")
    notes = [
        f"Left out: {r.path.name} ({r.model} on {r.benchmark}) is incomplete ({r.summary.incomplete_reason}); "
        "pass --include-incomplete to show it."
        for r in left_out
    ]
    if any(m.incomplete for m in models):
        notes.append("Models marked INCOMPLETE have runs whose rates cover only the prompts that got an answer.")
    sets = {m.model: tuple(sorted(r.benchmark for r in m.runs)) for m in models}
    if len(set(sets.values())) > 1:
        listed = "; ".join(f"{name}: {', '.join(bench)}" for name, bench in sets.items())
        notes.append(
            f"The models were not run on the same benchmarks ({listed}): their pooled rates come from different "
            "prompts. Compare the per-benchmark columns, or draw the scatter with --x-benchmark NAME."
        )
    notes.extend(judging_notes(runs))
    tests = [mcnemar(a, b, label) for a, b in pairs for label in ("benign", "toxic")]
    examples = _examples(pairs[0][0], pairs[0][1], EXAMPLES) if pairs else []
    return Comparison(
        models=models,
        benchmarks=benchmarks,
        categories=sorted({c for m in models for c in m.categories}),
        x_benchmark=x_benchmark,
        spearman=spearman(models, x_benchmark),
        mcnemar=tests,
        examples=examples,
        example_pair=(pairs[0][0].model, pairs[0][1].model) if pairs else None,
        notes=notes,
    )


# ---------------------------------------------------------------- figures


def _plotly() -> tuple[Any, Any, Callable[[], str]]:
    try:
        import plotly.graph_objects as go
        import plotly.io as pio
        from plotly.offline import get_plotlyjs
    except ImportError as exc:
        raise MissingDependencyError("the comparative report", "report", ["plotly", "scipy"]) from exc
    return go, pio, get_plotlyjs


def _label(text: str) -> str:
    """Plotly reads a few HTML-like tags in labels; escape so model names show literally and run nothing."""
    return html.escape(text, quote=False)


def _err(stat: RateStat | None) -> tuple[float | None, float, float]:
    if stat is None or stat.rate is None or stat.ci_low is None or stat.ci_high is None:
        return None, 0.0, 0.0
    return stat.rate, stat.rate - stat.ci_low, stat.ci_high - stat.rate


def figures(comp: Comparison) -> dict[str, Any]:
    """The plotly figures (as JSON-able dicts) built from the aggregates only."""
    go, pio, _ = _plotly()
    names, xs, ys, ex_minus, ex_plus, ey_minus, ey_plus = [], [], [], [], [], [], []
    for m in comp.models:
        x, xm, xp = _err(_x_stat(m, comp.x_benchmark))
        y, ym, yp = _err(m.toxic_refusal)
        if x is None or y is None:
            continue
        names.append(_label(m.model))
        xs.append(x)
        ys.append(y)
        ex_minus.append(xm)
        ex_plus.append(xp)
        ey_minus.append(ym)
        ey_plus.append(yp)
    x_title = (
        f"over-refusal rate on {_label(comp.x_benchmark)} (lower is better)"
        if comp.x_benchmark
        else "over-refusal rate, pooled benign sets (lower is better)"
    )
    scatter = go.Figure()
    scatter.add_trace(
        go.Scatter(
            name="models",
            x=xs,
            y=ys,
            text=names,
            mode="markers+text",
            textposition="top center",
            marker={"size": 11},
            error_x={"type": "data", "symmetric": False, "array": ex_plus, "arrayminus": ex_minus},
            error_y={"type": "data", "symmetric": False, "array": ey_plus, "arrayminus": ey_minus},
            hovertemplate="%{text}<br>over-refusal %{x:.1%}<br>toxic refusal %{y:.1%}<extra></extra>",
        )
    )
    scatter.add_trace(
        go.Scatter(
            name="ideal",
            x=[0],
            y=[1],
            mode="markers+text",
            text=["ideal"],
            textposition="bottom right",
            marker={"symbol": "star", "size": 16, "color": "#2a9d8f"},
            hovertemplate="ideal: refuses no benign and every toxic prompt<extra></extra>",
        )
    )
    scatter.update_layout(
        title="Trade-off: over-refusal vs toxic refusal (95% Wilson intervals)",
        xaxis={"title": x_title, "tickformat": ".0%", "range": [-0.05, 1.05]},
        yaxis={"title": "toxic refusal rate (higher is better)", "tickformat": ".0%", "range": [-0.05, 1.08]},
        height=520,
        margin={"t": 60, "l": 70, "r": 20, "b": 60},
        showlegend=False,
    )
    bars: dict[str, Any] = {}
    for kind, index, title in (
        ("benign", 0, "Over-refusal rate per category (benign prompts refused, lower is better)"),
        ("toxic", 1, "Toxic refusal rate per category (toxic prompts refused, higher is better)"),
    ):
        fig = go.Figure()
        for m in comp.models:
            stats = [m.categories.get(c, (None, None))[index] for c in comp.categories]
            errs = [_err(s) for s in stats]
            fig.add_trace(
                go.Bar(
                    name=_label(m.model),
                    x=[_label(c) for c in comp.categories],
                    y=[e[0] for e in errs],
                    error_y={
                        "type": "data",
                        "symmetric": False,
                        "array": [e[2] for e in errs],
                        "arrayminus": [e[1] for e in errs],
                    },
                )
            )
        fig.update_layout(title=title, barmode="group", yaxis={"tickformat": ".0%", "range": [0, 1.05]}, height=420)
        bars[kind] = fig
    return {
        name: json.loads(pio.to_json(fig, validate=False))
        for name, fig in (("scatter", scatter), ("benign", bars["benign"]), ("toxic", bars["toxic"]))
    }


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
) -> Comparison:
    """Compare ``runs`` and write the page to ``output`` atomically; return the comparison."""
    comp = compare(runs, pair=pair, x_benchmark=x_benchmark, on_run=on_run, include_incomplete=include_incomplete)
    page = render_comparison(comp)
    try:
        write_atomic(output, page)
    except OSError as exc:
        raise BadInputError(
            f"cannot write the report to {output} ({exc.strerror or exc}): pass a writable -o path"
        ) from None
    return comp
