"""Images as data: check them, turn them into data URIs and thumbnails. Pillow is imported only here.

Every image is decoded before it is used, so a file that is not an image (or only claims a type, like
an SVG or an HTML page named ``.png``) is refused; the media type is the decoded format's, never the
one a file name or data URI declares. Only PNG, JPEG, GIF and WebP are accepted: formats every
vision-language API takes and every browser shows as pixels, never as markup.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import re
import warnings
from types import ModuleType

from overrefusal.errors import MissingDependencyError
from overrefusal.records import Image

MAX_IMAGE_BYTES = 20 * 1024 * 1024
"""Larger images are refused (OpenAI's limit per image; Anthropic takes up to 5 MB)."""
MAX_PIXELS = 40_000_000
"""Larger images are refused before they are decoded (a decompression bomb)."""
THUMBNAIL_PX = 160
MEDIA_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}
EXTENSIONS = {media: media.rsplit("/", 1)[-1] for media in MEDIA_TYPES.values()}
FILE_NAME = re.compile(r"^[0-9a-f]{64}\.(?:png|jpeg|gif|webp)$")
"""The only names a run folder's ``images/`` holds: a content hash and a known extension."""
_DATA_URI = re.compile(r"^data:([\w.+-]+/[\w.+-]+)?((?:;[\w.+-]+=[\w.+-]+)*);base64,(.*)$", re.DOTALL)


class ImageError(ValueError):
    """Why bytes are not a usable image: the end of a one-line message (``... is not an image``)."""


def pillow(feature: str = "images") -> ModuleType:
    """Pillow's ``PIL.Image``, or a one-line error naming the ``images`` extra."""
    try:
        from PIL import Image as PILImage
    except ImportError as exc:
        raise MissingDependencyError(feature, "images", ["pillow"]) from exc
    return PILImage


def decode(data: bytes, name: str) -> Image:
    """Check that ``data`` is one image of an accepted format and size; return it with its hash.

    Raises:
        ImageError: empty, too large, not an image, an unaccepted format or a truncated file.
    """
    if not data:
        raise ImageError("is empty")
    if len(data) > MAX_IMAGE_BYTES:
        raise ImageError(f"is {len(data) / 1e6:.1f} MB, over the {MAX_IMAGE_BYTES // 2**20} MiB limit")
    pil = pillow("reading images")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pil.DecompressionBombWarning)
            with pil.open(io.BytesIO(data)) as probe:
                kind, width, height = probe.format, probe.width, probe.height
                if kind not in MEDIA_TYPES:
                    raise ImageError(f"is a {kind} image, not PNG, JPEG, GIF or WebP")
                if width * height > MAX_PIXELS:
                    raise ImageError(f"is {width}x{height} pixels, over the {MAX_PIXELS:,}-pixel limit")
                probe.verify()
            with pil.open(io.BytesIO(data)) as full:
                full.load()  # verify() misses truncated pixel data
    except ImageError:
        raise
    except (OSError, ValueError, SyntaxError, pil.DecompressionBombError, pil.DecompressionBombWarning) as exc:
        detail = str(exc).splitlines()[0][:80] if str(exc) else type(exc).__name__
        raise ImageError(f"is not a readable image ({detail})") from None
    return Image(
        sha256=hashlib.sha256(data).hexdigest(),
        media_type=MEDIA_TYPES[kind],
        width=width,
        height=height,
        name=name,
        data=data,
    )


def from_data_uri(text: str) -> bytes:
    """The bytes of a base64 ``data:`` URI (the declared type is ignored: :func:`decode` finds the real one).

    Raises:
        ImageError: not a base64 data URI.
    """
    match = _DATA_URI.match(text.strip())
    if match is None:
        raise ImageError("is not a base64 data URI (data:image/png;base64,...)")
    try:
        return base64.b64decode(re.sub(r"\s+", "", match.group(3)), validate=True)
    except (binascii.Error, ValueError):
        raise ImageError("is a data URI with invalid base64") from None


def data_uri(image: Image) -> str:
    """The image as a base64 data URI (what OpenAI-compatible servers take)."""
    return f"data:{image.media_type};base64,{base64.b64encode(image.data).decode('ascii')}"


def to_png(picture: object) -> bytes:
    """A Pillow image (as ``datasets`` decodes an image column) saved as PNG bytes."""
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")  # type: ignore[attr-defined]
    return buffer.getvalue()


def thumbnail(data: bytes, size: int = THUMBNAIL_PX) -> str:
    """A small PNG of the image as a data URI (for self-contained reports); empty when it cannot be read."""
    pil = pillow("thumbnails")
    try:
        with pil.open(io.BytesIO(data)) as picture:
            picture.thumbnail((size, size))
            small = picture.convert("RGBA" if picture.mode in ("RGBA", "LA", "P") else "RGB")
            buffer = io.BytesIO()
            small.save(buffer, format="PNG", optimize=True)
    except (OSError, ValueError, SyntaxError, pil.DecompressionBombError):
        return ""
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
