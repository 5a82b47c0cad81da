"""The image column of a benchmark: a path relative to the benchmark file, a data URI, or hub image data.

Each image is read and checked once per file (:mod:`overrefusal.images`); a problem stops the load with
one line naming the row, the image and the fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from overrefusal.errors import BadInputError
from overrefusal.images import MAX_IMAGE_BYTES, ImageError, decode, from_data_uri, to_png
from overrefusal.records import Image

FIX = "replace it with a PNG, JPEG, GIF or WebP image under 20 MiB"


class ImageReader:
    """Reads the image cells of one benchmark.

    Args:
        bases: folders a relative path is looked up in, in order (the benchmark file's folder first).
    """

    def __init__(self, bases: Sequence[Path]) -> None:
        """Remember where relative paths are looked up; nothing is read yet."""
        self.bases = [b.resolve() for b in bases]
        self._seen: dict[Path, Image] = {}

    def read(self, value: Any, where: str) -> Image | None:
        """The image of one cell (None for an empty cell).

        Raises:
            BadInputError: the image is missing, too large, not an image, or of an unaccepted format.
        """
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if isinstance(value, dict):  # a hub image column read without decoding: {"bytes": ..., "path": ...}
            if value.get("bytes"):
                return self._decode(bytes(value["bytes"]), str(value.get("path") or "hub image"), where)
            value = value.get("path")
            if not value:
                return None
        if isinstance(value, bytes | bytearray):
            return self._decode(bytes(value), "image bytes", where)
        if hasattr(value, "save") and hasattr(value, "size"):  # a hub image column decoded by Pillow
            return self._decode(to_png(value), "hub image", where)
        text = str(value).strip()
        if text.startswith("data:"):
            try:
                data = from_data_uri(text)
            except ImageError as exc:
                raise BadInputError(f"{where} has an image that {exc}: fix the image column") from None
            return self._decode(data, "data URI", where)
        if text.startswith(("http://", "https://")):
            raise BadInputError(
                f"{where} has an image URL ({text[:60]!r}): images are never fetched; download it and give its path"
            )
        return self._file(text, where)

    def _file(self, text: str, where: str) -> Image:
        given = Path(text).expanduser()
        candidates = [given] if given.is_absolute() else [base / given for base in self.bases]
        path = next((c for c in candidates if c.is_file()), None)
        shown = text if len(text) <= 80 else text[:77] + "..."
        if path is None:
            looked = candidates[0]
            what = "is a folder" if looked.is_dir() else "not found"
            raise BadInputError(
                f"{where}: image {shown!r} {what} (looked for {looked}): fix the path (relative to the "
                "benchmark file) or the --image-column"
            )
        path = path.resolve()
        if path in self._seen:
            return self._seen[path]
        size = path.stat().st_size
        if size > MAX_IMAGE_BYTES:
            raise BadInputError(
                f"{where}: image {shown!r} is {size / 1e6:.1f} MB, over the {MAX_IMAGE_BYTES // 2**20} MiB limit: "
                "shrink it"
            )
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise BadInputError(
                f"{where}: image {shown!r} cannot be read ({exc.strerror}): fix its permissions"
            ) from None
        image = self._decode(data, text, where)
        self._seen[path] = image
        return image

    @staticmethod
    def _decode(data: bytes, name: str, where: str) -> Image:
        shown = name if len(name) <= 80 else name[:77] + "..."
        try:
            return decode(data, name[:200])
        except ImageError as exc:
            raise BadInputError(f"{where}: image {shown!r} {exc}: {FIX}") from None
