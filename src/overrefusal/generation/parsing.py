"""Parse generator and moderator output: wrapped items ``[[...]]`` with fallbacks, and moderation tags.

Generators are asked to wrap each item as ``[[1. item]]``. Models do not always obey, so the
parser falls back, in order, to ``«item»``, to numbered single brackets (``[1. item]``) and then
to numbered lines (``1. item``, ``2) item``). An item cut off by the token limit (no closing
bracket) is dropped: half a prompt is not a prompt.
Numbering, surrounding quotes and whitespace are stripped; junk (placeholders, too-short items)
is dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

WRAPPED = re.compile(r"\[\[(.+?)\]\]", re.DOTALL)
GUILLEMETS = re.compile(r"«(.+?)»", re.DOTALL)
SINGLE_BRACKETS = re.compile(r"(?<!\[)\[(\d{1,3}\s*[.)]\s+[^\[\]]+?)\]")
"""``[1. item]`` (or ``[1. item]]``): what small models often write instead of double brackets."""
NUMBERED_LINE = re.compile(r"^\s*(?:[-*•]\s*)?\(?\d{1,3}\s*[.):]\s+(.+?)\s*$", re.MULTILINE)
LEADING_NUMBER = re.compile(r"^\s*(?:[-*•]\s*)?\(?\d{1,3}\s*[.):-]\s*")
QUOTES = "\"'“”‘’`"
PLACEHOLDERS = frozenset({"here is prompt", "prompt", "here is the prompt", "...", "…"})
MIN_CHARS = 8

ParseMethod = Literal["wrapped", "guillemets", "brackets", "numbered", "none"]


@dataclass(frozen=True)
class Parsed:
    """Items found in one output and how they were found."""

    items: tuple[str, ...]
    method: ParseMethod


STRAY_BRACKETS = "[]«»"


def clean_item(raw: str) -> str:
    """Strip numbering, stray brackets, markdown emphasis, quotes and collapse whitespace."""
    text = " ".join(raw.split()).strip(STRAY_BRACKETS).strip()
    text = LEADING_NUMBER.sub("", text, count=1).strip(STRAY_BRACKETS).strip()
    text = text.strip().strip("*_").strip()
    if len(text) >= 2 and text[0] in QUOTES and text[-1] in QUOTES:
        text = text[1:-1].strip()
    return text


def _keep(item: str) -> bool:
    lowered = item.lower().strip(" .:")
    return len(item) >= MIN_CHARS and lowered not in PLACEHOLDERS and "[[" not in item and "]]" not in item


def parse_items(output: str, limit: int | None = None) -> Parsed:
    """Extract the generated items from ``output``, in order, without exact duplicates.

    Args:
        output: the model's raw text.
        limit: keep at most this many items.
    """
    for method, found in (
        ("wrapped", WRAPPED.findall(output)),
        ("guillemets", GUILLEMETS.findall(output)),
        ("brackets", SINGLE_BRACKETS.findall(output)),
        ("numbered", NUMBERED_LINE.findall(output)),
    ):
        items: list[str] = []
        seen: set[str] = set()
        for raw in found:
            item = clean_item(raw)
            key = normalise(item)
            if _keep(item) and key not in seen:
                seen.add(key)
                items.append(item)
        if items:
            return Parsed(tuple(items[:limit]), method)  # type: ignore[arg-type]
    return Parsed((), "none")


def normalise(text: str) -> str:
    """The form used for exact-duplicate detection: lowercase, single spaces, no edge punctuation."""
    return " ".join(text.lower().split()).strip(" .!?;:,\"'“”‘’")


@dataclass(frozen=True)
class ModerationLabel:
    """A moderator's parsed decision."""

    vote: Literal["toxic", "benign", "abstain"]
    category: str | None
    """The category chosen (toxic votes only)."""
    reason: str
    """Why the vote is what it is (e.g. the tag found, or why it is an abstention)."""


NONE_WORDS = ("none of the above", "none")
ECHOED = "echoed the template's example tag"
"""Start of the reason of a moderation output whose tag is the template's example."""


def parse_moderation(output: str, categories: list[str], example_tag: str | None = None) -> ModerationLabel:
    """Read the LAST ``[[N. category]]`` tag; ``none of the above`` is benign; a category is toxic.

    The tag may carry the number, the name, or both. A name is matched ignoring case, hyphens
    and extra words after it ("Illegal activities"); a name that matches nothing falls back to a
    valid number. No tag, or a tag naming no category by name or number, is an abstention: it is
    never read as benign or toxic. A tag equal to ``example_tag`` (the template's example, which
    names no category) abstains with a reason starting ``echoed``: the moderator copied the template.
    """
    tags = WRAPPED.findall(output)
    if not tags:
        return ModerationLabel("abstain", None, "no [[...]] tag in the moderator output")
    tag = " ".join(tags[-1].split()).strip()
    if example_tag is not None and _plain(tag) == _plain(example_tag):
        return ModerationLabel("abstain", None, f"{ECHOED} [[{tag}]]")
    number_match = re.match(r"^\(?(\d{1,2})\s*[.):]?\s*(.*)$", tag)
    number = int(number_match.group(1)) if number_match else None
    name = _plain((number_match.group(2) if number_match else tag).strip().strip(".").strip(QUOTES))
    lowered = [_plain(c) for c in categories]
    numbered = number is not None and 1 <= number <= len(categories)
    if name in NONE_WORDS or re.match(r"^none of\b", name) or (not name and number == len(categories) + 1):
        return ModerationLabel("benign", None, f"tag [[{tag}]]")
    if name:
        if name in lowered:
            return ModerationLabel("toxic", categories[lowered.index(name)], f"tag [[{tag}]]")
        # "illegal activities", "hateful content": a category name followed by more words
        longer = [i for i, c in enumerate(lowered) if name.startswith(c)]
        if longer:
            best = max(longer, key=lambda i: len(lowered[i]))
            return ModerationLabel("toxic", categories[best], f"tag [[{tag}]] read as {categories[best]}")
        if numbered:
            assert number is not None
            return ModerationLabel("toxic", categories[number - 1], f"tag [[{tag}]] read by its number")
        return ModerationLabel("abstain", None, f"unknown category in tag [[{tag}]]")
    if numbered:
        assert number is not None
        return ModerationLabel("toxic", categories[number - 1], f"tag [[{tag}]]")
    return ModerationLabel("abstain", None, f"unreadable tag [[{tag}]]")


def _plain(name: str) -> str:
    """Lower case, hyphens and underscores as spaces (``Self-Harm`` = ``self harm``)."""
    return " ".join(name.lower().replace("-", " ").replace("_", " ").split())


def parse_yes_no(output: str) -> Literal["toxic", "benign", "abstain"]:
    """The last ``[[yes]]`` / ``[[no]]`` tag of a second-pass answer: yes is toxic, no is benign, else abstain."""
    tags = WRAPPED.findall(output)
    if not tags:
        return "abstain"
    word = _plain(tags[-1]).strip(" .!")
    return "toxic" if word == "yes" else "benign" if word == "no" else "abstain"
