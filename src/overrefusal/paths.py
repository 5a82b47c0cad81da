"""Where overrefusal keeps its state."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """The state folder: ``$OVERREFUSAL_HOME`` or ``~/.cache/overrefusal``; created on demand."""
    env = os.environ.get("OVERREFUSAL_HOME")
    path = Path(env).expanduser() if env else Path.home() / ".cache" / "overrefusal"
    path.mkdir(parents=True, exist_ok=True)
    return path


def store_path() -> Path:
    """The single SQLite file holding responses and verdicts."""
    return home() / "store.sqlite3"


def models_dir() -> Path:
    """Where assembled model files live: ``$OVERREFUSAL_MODELS`` or ``$OVERREFUSAL_HOME/models``."""
    env = os.environ.get("OVERREFUSAL_MODELS")
    path = Path(env).expanduser() if env else home() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path
