"""``overrefusal view``: browse runs and relabel responses in a local web page."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from overrefusal.progress import Bar
from overrefusal.report.runs import load_runs
from overrefusal.viewer.data import ViewerData
from overrefusal.viewer.gold import GoldFile
from overrefusal.viewer.server import build_app, start


async def _serve(data: ViewerData, host: str, port: int) -> None:
    runner, bound = await start(build_app(data), host, port)
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"serving http://{shown}:{bound}/ ({len(data.rows)} responses; relabels go to {data.gold.path})")
    click.echo("press Ctrl-C to stop", err=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


@click.command("view")
@click.argument("runs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (keep it local).")
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True, help="Port; 0 picks a free one.")
@click.option(
    "--gold",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Gold file for relabels (XSTest completions layout) [default: <first run>/gold.csv].",
)
def view(runs: tuple[Path, ...], host: str, port: int, gold: Path | None) -> None:
    """Browse prompts, responses and verdicts of RUNS; filter them and relabel responses.

    Relabels are written atomically to the gold file, which `overrefusal judge eval` reads.
    """
    folders = load_runs(list(runs))
    gold_file = GoldFile(gold if gold is not None else folders[0].path / "gold.csv")
    with Bar("reading runs", len(folders), enabled=sys.stderr.isatty()) as bar:
        data = ViewerData(folders, gold_file, on_run=bar.advance)
    try:
        asyncio.run(_serve(data, host, port))
    except KeyboardInterrupt:
        click.echo("stopped", err=True)
