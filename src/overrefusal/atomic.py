"""The one atomic file write: a temporary file in the same folder, then ``os.replace``."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def write_atomic(path: Path, content: str | bytes | Callable[[Path], None], mode: int = 0o644) -> None:
    """Write ``path`` so that it is either complete or left as it was.

    Args:
        path: the file to write; its folder is created if missing.
        content: text (written as UTF-8, newlines untouched), bytes, or a function that writes the
            temporary file it is given (its name keeps ``path``'s suffix, e.g. ``.npz``) and may raise
            to abandon the write.
        mode: permissions of the new file (temporary files start readable by their owner only).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    tmp = Path(name)
    try:
        if callable(content):
            os.close(fd)
            content(tmp)
        else:
            with os.fdopen(fd, "wb") as handle:
                handle.write(content.encode("utf-8") if isinstance(content, str) else content)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
