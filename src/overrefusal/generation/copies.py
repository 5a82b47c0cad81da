"""Outputs that copy a template: format placeholders echoed, few-shot examples copied.

Such items are never prompts of the benchmark: every stage removes them (like an exclusion set)
and counts them, and the sanity checks fail a stage where they are a large share of its output.
"""

from __future__ import annotations

import re
from typing import Literal

from overrefusal.generation.parsing import normalise
from overrefusal.generation.prompts import PLACEHOLDERS, REWRITE_EXAMPLES

EXAMPLE_TEXTS: tuple[str, ...] = tuple(text for pair in REWRITE_EXAMPLES for text in pair)
"""Every text the templates show as an example (originals and rewrites)."""
OVERLAP = 0.8
"""Share of the shorter text's words found in the other above which an item copies an example."""
MIN_WORDS = 5

Copy = Literal["echo", "copied_example"]
_PLACEHOLDER_KEYS = frozenset(normalise(p) for p in PLACEHOLDERS)


def _words(text: str) -> frozenset[str]:
    return frozenset(re.findall(r"[a-z0-9']+", text.lower()))


_EXAMPLE_WORDS = tuple(_words(t) for t in EXAMPLE_TEXTS)


def template_copy(item: str) -> Copy | None:
    """``echo`` for a format placeholder, ``copied_example`` for a (near) copy of a few-shot example, else None."""
    if normalise(item) in _PLACEHOLDER_KEYS:
        return "echo"
    words = _words(item)
    if len(words) < MIN_WORDS:
        return None
    for example in _EXAMPLE_WORDS:
        if len(words & example) >= OVERLAP * min(len(words), len(example)):
            return "copied_example"
    return None
