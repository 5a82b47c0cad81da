"""The comparative report's plotly figures, built from the aggregates only (never from raw responses)."""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from overrefusal.errors import MissingDependencyError
from overrefusal.metrics import RateStat

if TYPE_CHECKING:
    from overrefusal.report.cells import Cell
    from overrefusal.report.compare import Comparison
    from overrefusal.report.reference import Reference


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


def x_stat(cell: Cell, x_benchmark: str | None) -> RateStat | None:
    """The cell's over-refusal on ``x_benchmark`` (pooled over its benign sets when None)."""
    if x_benchmark is None:
        return cell.over_refusal
    return cell.benign_by_benchmark.get(x_benchmark)


def _reference_trace(go: Any, reference: Reference) -> Any:
    """Published points: grey, hollow, named on hover only (32 labels would hide the cells' own)."""
    names = [_label(p.model + (" *" if p.judge_model else "")) for p in reference.points]
    return go.Scatter(
        name=_label(reference.title),
        x=[p.over_refusal for p in reference.points],
        y=[p.toxic_refusal for p in reference.points],
        text=names,
        mode="markers",
        marker={"size": 8, "color": "rgba(120,120,120,0.55)", "symbol": "circle-open", "line": {"width": 1.5}},
        hovertemplate=(
            "%{text}<br>"
            + _label(reference.x_benchmark)
            + " rejection %{x:.1%}<br>"
            + _label(reference.y_benchmark)
            + " rejection %{y:.1%}<extra>"
            + _label(reference.name)
            + "</extra>"
        ),
    )


def figures(comp: Comparison) -> dict[str, Any]:
    """The plotly figures (as JSON-able dicts) built from the aggregates only.

    The scatter's first trace holds one point per cell; the published reference points, when asked for,
    are a trace of their own after it.
    """
    go, pio, _ = _plotly()
    names, xs, ys, ex_minus, ex_plus, ey_minus, ey_plus = [], [], [], [], [], [], []
    for m in comp.models:
        x, xm, xp = _err(x_stat(m, comp.x_benchmark))
        y, ym, yp = _err(m.toxic_refusal)
        if x is None or y is None:
            continue
        names.append(_label(m.label))
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
            name="cells",
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
    if comp.reference is not None:
        scatter.add_trace(_reference_trace(go, comp.reference))
    scatter.update_layout(
        title="Trade-off: over-refusal vs toxic refusal (95% Wilson intervals)",
        xaxis={"title": x_title, "tickformat": ".0%", "range": [-0.05, 1.05]},
        yaxis={"title": "toxic refusal rate (higher is better)", "tickformat": ".0%", "range": [-0.05, 1.08]},
        height=520,
        margin={"t": 60, "l": 70, "r": 20, "b": 60},
        showlegend=comp.reference is not None,
        legend={"orientation": "h", "y": -0.15},
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
                    name=_label(m.label),
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
