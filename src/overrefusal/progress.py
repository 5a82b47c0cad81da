"""A progress bar with rate, error count and ETA, drawn on stderr."""

from __future__ import annotations

import time
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class Bar:
    """``with Bar("answering", total) as bar: bar.advance(error=False)``."""

    def __init__(self, description: str, total: int, enabled: bool = True) -> None:
        """Create a bar; nothing is drawn when ``enabled`` is False."""
        self.description = description
        self.total = total
        self.errors = 0
        self.done = 0
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._shown = 0.0
        if enabled and total > 0:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}/s"),
                TextColumn("errors {task.fields[errors]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=False,
            )

    def __enter__(self) -> Bar:
        if self._progress is not None:
            self._progress.start()
            self._task = self._progress.add_task(self.description, total=self.total, rate="-", errors=0)
        return self

    def advance(self, error: bool = False) -> None:
        """Mark one item done."""
        self.done += 1
        if error:
            self.errors += 1
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task)
            now = time.monotonic()
            if now - self._shown >= 0.2 or self.done == self.total:  # the rate costs O(samples): not per item
                self._shown = now
                speed = self._progress.tasks[0].speed
                self._progress.update(self._task, rate=f"{speed:.1f}" if speed else "-", errors=self.errors)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
