"""A progress bar with rate, error count and ETA, drawn on stderr."""

from __future__ import annotations

import threading
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

_lock = threading.Lock()
_shared: Progress | None = None
_users = 0


def _acquire() -> Progress:
    """The one live display on stderr, shared by every open bar (rich allows one at a time)."""
    global _shared, _users
    with _lock:
        if _shared is None:
            _shared = Progress(
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
            _shared.start()
        _users += 1
        return _shared


def _release() -> None:
    global _shared, _users
    with _lock:
        _users -= 1
        if _users == 0 and _shared is not None:
            _shared.stop()
            _shared = None


class Bar:
    """``with Bar("answering", total) as bar: bar.advance(error=False)``.

    Bars open at the same time (moderators working in parallel, say) are drawn together.
    """

    def __init__(self, description: str, total: int, enabled: bool = True) -> None:
        """Create a bar; nothing is drawn when ``enabled`` is False."""
        self.description = description
        self.total = total
        self.errors = 0
        self.done = 0
        self._enabled = enabled and total > 0
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._shown = 0.0

    def __enter__(self) -> Bar:
        if self._enabled:
            self._progress = _acquire()
            self._task = self._progress.add_task(self.description, total=self.total, rate="-", errors=0)
        return self

    def advance(self, error: bool = False, count: int = 1) -> None:
        """Mark ``count`` items done (errors when ``error``)."""
        if count <= 0:
            return
        self.done += count
        if error:
            self.errors += count
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task, count)
            now = time.monotonic()
            if now - self._shown >= 0.2 or self.done == self.total:  # the rate costs O(samples): not per item
                self._shown = now
                task = next(t for t in self._progress.tasks if t.id == self._task)
                speed = task.speed
                self._progress.update(self._task, rate=f"{speed:.1f}" if speed else "-", errors=self.errors)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress = None
            _release()
