"""Where overrefusal keeps its state."""

from __future__ import annotations

import os
from pathlib import Path

from overrefusal.errors import RunError


def _make(path: Path, what: str) -> Path:
    """Create ``path`` (and its parents) or fail with one line naming the variable that sets it."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise RunError(f"cannot create {what} {path}: {reason}; set {what} to a folder you can write") from None
    return path


def home() -> Path:
    """The state folder: ``$OVERREFUSAL_HOME`` or ``~/.cache/overrefusal``; created on demand."""
    env = os.environ.get("OVERREFUSAL_HOME")
    path = Path(env).expanduser() if env else Path.home() / ".cache" / "overrefusal"
    return _make(path, "OVERREFUSAL_HOME")


def store_path() -> Path:
    """The single SQLite file holding responses and verdicts."""
    return home() / "store.sqlite3"


def models_dir() -> Path:
    """Where assembled model files live: ``$OVERREFUSAL_MODELS`` or ``$OVERREFUSAL_HOME/models``.

    Raises:
        OSError: the folder cannot be created (the embedded backend names the variable to fix).
    """
    env = os.environ.get("OVERREFUSAL_MODELS")
    path = Path(env).expanduser() if env else home() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path
