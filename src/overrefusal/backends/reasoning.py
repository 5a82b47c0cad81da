"""Separating a reasoning model's thinking from its final answer.

Servers return the thinking in a field of its own (``reasoning_content``, ``reasoning``), inline
as ``<think>...</think>`` before the answer, or - when the chat template opened the tag in the
prompt - as a bare ``...</think>``. Judges read the final answer only; an answer that stops
inside its thinking has no final answer and is scored ``unscored`` ("truncated in reasoning").
"""

from __future__ import annotations

from dataclasses import dataclass

OPEN = "<think>"
CLOSE = "</think>"


@dataclass(frozen=True)
class Split:
    """A model's output split into final answer and reasoning."""

    answer: str
    reasoning: str
    ended_in_reasoning: bool
    """The output stopped inside the reasoning: there is no final answer."""


def split_thinking(text: str, reasoning: str = "") -> Split:
    """Split ``text`` at its ``<think>`` block; ``reasoning`` is thinking the server already separated.

    * ``<think>R</think>A`` and the bare ``R</think>A``: reasoning R, answer A.
    * ``<think>R`` with no closing tag: reasoning R, no answer, ended inside the reasoning.
    * Anything else is all answer.

    With separate ``reasoning`` and an empty answer, the output also ended inside the reasoning.
    """
    head = text.lstrip()
    inline = ""
    inside = False
    if head.startswith(OPEN):
        body = head[len(OPEN) :]
        end = body.find(CLOSE)
        if end < 0:
            inline, text, inside = body.strip(), "", True
        else:
            inline, text = body[:end].strip(), body[end + len(CLOSE) :]
    elif CLOSE in text:
        end = text.find(CLOSE)
        inline, text = text[:end].replace(OPEN, "", 1).strip(), text[end + len(CLOSE) :]
    answer = text.lstrip() if inline else text
    thinking = "\n\n".join(part for part in (reasoning.strip(), inline) if part)
    return Split(answer=answer, reasoning=thinking, ended_in_reasoning=inside or bool(thinking and not answer.strip()))
