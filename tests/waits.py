"""Waiting on child processes without ever blocking the suite: every read has a deadline."""

from __future__ import annotations

import queue
import signal
import threading
from typing import IO


def read_line(stream: IO[str], timeout_s: float = 120.0) -> str:
    """The next line a child writes to ``stream``; fails the test after ``timeout_s`` instead of hanging.

    The read happens in a daemon thread: when the deadline passes, the test fails and kills the
    child, which ends the read.
    """
    box: queue.Queue[str] = queue.Queue(maxsize=1)
    threading.Thread(target=lambda: box.put(stream.readline()), daemon=True).start()
    try:
        return box.get(timeout=timeout_s)
    except queue.Empty:
        raise AssertionError(f"the child process wrote no line within {timeout_s:g}s") from None


def as_from_a_shell() -> None:
    """``preexec_fn`` for a child the test will Ctrl-C: SIGINT at its default and unblocked, as a shell starts it.

    A child inherits an ignored or blocked SIGINT from the process that starts it; the test must not depend
    on what the libraries loaded into the test process did to it.
    """
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])
    signal.signal(signal.SIGINT, signal.SIG_DFL)
