"""``overrefusal store check`` and ``overrefusal store repair``."""

from __future__ import annotations

from pathlib import Path

import click

from overrefusal import paths, store_repair


def _path(path: Path | None) -> Path:
    return path if path is not None else paths.store_path()


_PATH = click.option(
    "--path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The store file [$OVERREFUSAL_HOME/store.sqlite3].",
)


@click.group("store")
def store() -> None:
    """Check or repair the store of answers and verdicts."""


@store.command("check")
@_PATH
def check(path: Path | None) -> None:
    """Check the store: SQLite integrity, tables, and every stored record. Exit 1 when it is damaged."""
    report = store_repair.check(_path(path))
    counts = ", ".join(
        f"{t.rows} {name}" for name, t in report.tables.items() if name not in store_repair.UNCOUNTED and not t.missing
    )
    if report.ok:
        click.echo(f"store {report.path} is sound ({counts})")
        return
    click.echo(
        f"store {report.path} is damaged: {'; '.join(report.problems())}: run `overrefusal store repair`", err=True
    )
    raise SystemExit(1)


@store.command("repair")
@_PATH
def repair(path: Path | None) -> None:
    """Rebuild the store from every readable, valid record (stop all runs first); the old file is kept."""
    report = store_repair.repair(_path(path))
    kept = ", ".join(f"{t.rows} {name}" for name, t in report.tables.items() if name not in store_repair.UNCOUNTED)
    dropped = sum(t.bad_rows + t.unreadable for t in report.tables.values())
    click.echo(f"repaired {report.path}: kept {kept}; dropped {dropped} damaged row(s); old file in {report.backup}")
