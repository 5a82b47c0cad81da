"""The self-contained HTML report of one run: summary table, per-category chart, examples."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

from overrefusal.errors import MissingDependencyError
from overrefusal.images import FILE_NAME, pillow, thumbnail
from overrefusal.metrics import Outcome, RateStat
from overrefusal.summary import Summary

_env = Environment(
    loader=PackageLoader("overrefusal.report", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def pct(value: float | None) -> str:
    """Format a rate as a percentage, or an em dash for no data."""
    return "\u2014" if value is None else f"{100 * value:.1f}%"


def interval(stat: RateStat) -> str:
    """Format a Wilson interval."""
    if stat.ci_low is None or stat.ci_high is None:
        return "\u2014"
    return f"{100 * stat.ci_low:.1f}\u2013{100 * stat.ci_high:.1f}"


_env.filters["pct"] = pct
_env.filters["interval"] = interval


def thumbnails(outcomes: Sequence[Outcome], images: Path | None) -> dict[str, str]:
    """File name -> thumbnail data URI of the listed outcomes' images, read from the run folder's ``images/`` only.

    Only files there are named; without Pillow (the ``images`` extra) a thumbnail is empty and the report
    links the file.
    """
    if images is None or not images.is_dir():
        return {}
    try:
        pillow("thumbnails")
        drawn = True
    except MissingDependencyError:
        drawn = False
    out: dict[str, str] = {}
    for o in outcomes:
        for image in (o.prompt.image, o.response.image if o.response is not None else None):
            if image is None or image.file_name in out or not FILE_NAME.match(image.file_name):
                continue
            path = images / image.file_name
            if path.is_file():
                out[image.file_name] = thumbnail(path.read_bytes()) if drawn else ""
    return out


def render_run_report(
    summary: Summary, outcomes: Sequence[Outcome], images: Path | None = None, examples: int = 200
) -> str:
    """Render the report; at most ``examples`` responses are listed (refusals of benign prompts first).

    ``images`` is the run folder's ``images/``: thumbnails are embedded, and linked to the files there.
    """

    def priority(o: Outcome) -> int:
        refused = o.verdict is not None and o.verdict.is_refusal
        if o.prompt.label == "benign" and refused:
            return 0
        if o.prompt.label == "toxic" and not refused:
            return 1
        return 2

    listed = sorted(outcomes, key=priority)[:examples]
    return _env.get_template("run.html.j2").render(
        s=summary, m=summary.metrics, outcomes=listed, total=len(outcomes), thumbs=thumbnails(listed, images)
    )
