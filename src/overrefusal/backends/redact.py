"""Masking an API key in every form a server can echo it back in.

Careless servers echo the credentials they received in error bodies, URL-encoded in a URL, escaped
inside a JSON string, or base64-encoded (Basic authentication, tokens); a model may even repeat it
in an answer. :class:`Redactor` replaces all of these forms with ``***`` before anything is stored.
"""

from __future__ import annotations

import base64
import json
from urllib.parse import quote, quote_plus

MASK = "***"

MIN_SECRET = 8
"""Shorter values are not masked: replacing two-letter "keys" would mangle every answer."""


def _base64_forms(secret: bytes) -> set[str]:
    """The base64 text of ``secret`` wherever it starts in a longer encoded text (three alignments).

    Base64 encodes 3 bytes as 4 characters, so the encoding of a key inside a longer value depends on
    the key's offset modulo 3; the characters that mix in neighbouring bytes are dropped.
    """
    forms: set[str] = set()
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + secret + b"\0\0").decode()
        first = (offset * 4 + 2) // 3 + (1 if offset else 0)  # first character that holds only key bits
        last = ((offset + len(secret)) * 4) // 3  # characters after it mix in the padding bytes
        core = encoded[first:last]
        if len(core) >= MIN_SECRET:
            forms.add(core)
            forms.add(core.replace("+", "-").replace("/", "_"))  # the URL-safe alphabet
    return forms


class Redactor:
    """Replaces a secret (plain, URL-encoded, JSON-escaped, base64) with ``***``."""

    def __init__(self, secret: str | None) -> None:
        """Prepare the forms of ``secret``; ``None`` or a very short value masks nothing."""
        forms: set[str] = set()
        if secret and len(secret) >= MIN_SECRET:
            forms = {secret, quote(secret, safe=""), quote_plus(secret), json.dumps(secret)[1:-1]}
            forms |= {f.lower() for f in forms if "%" in f}  # percent-escapes in lower case
            forms |= _base64_forms(secret.encode())
        # longest first, so a form that contains another is replaced whole
        self._forms = tuple(sorted(forms, key=len, reverse=True))
        self._bytes = tuple(f.encode() for f in self._forms)

    def __bool__(self) -> bool:
        return bool(self._forms)

    def redact(self, text: str) -> str:
        """``text`` with every form of the secret masked."""
        for form in self._forms:
            if form in text:
                text = text.replace(form, MASK)
        return text

    def redact_bytes(self, raw: bytes) -> bytes:
        """``raw`` with every form of the secret masked (a fast no-op when none occurs)."""
        for form in self._bytes:
            if form in raw:
                raw = raw.replace(form, MASK.encode())
        return raw
