"""Published reference points to overlay on the trade-off scatter (``overrefusal report --reference NAME``).

``orbench-2024``: the 32 models of OR-Bench (Cui, Chiang, Stoica, Hsieh, "OR-Bench: An Over-Refusal Benchmark
for Large Language Models", arXiv 2405.20947, ICML 2025, PMLR 267:11515-11542). x is the overall rejection
rate on OR-Bench-Hard-1K (paper Table 2), y the rejection rate on OR-Bench-Toxic, 100 minus the overall
acceptance rate of Table 6; both at temperature 0, no system prompt, judged by the paper's GPT-4-turbo
LLM judge. The figures are as transcribed in this project's reference notes on the method
(``orbench-method.md`` section 4.2, "Reference numbers"); where the paper's ``plot.py`` differs slightly from the
tables, the table value is used. The 80K column (paper Table 7, keyword matching) is kept where the notes
give it, for 20 of the models; it is not drawn.
"""

from __future__ import annotations

from dataclasses import dataclass

from overrefusal.errors import BadInputError


@dataclass(frozen=True)
class ReferencePoint:
    """One published model."""

    model: str
    over_refusal: float
    """Rejection rate on the benign hard set (0 to 1)."""
    toxic_refusal: float
    """Rejection rate on the toxic set (0 to 1)."""
    judge_model: bool = False
    """One of the models that also served as the paper's judges or moderators (marked * in the paper)."""
    over_refusal_80k: float | None = None
    """Rejection rate on the 80K set by keyword matching, where published."""


@dataclass(frozen=True)
class Reference:
    """A set of published points and where they come from."""

    name: str
    title: str
    x_benchmark: str
    y_benchmark: str
    judge: str
    citation: str
    points: tuple[ReferencePoint, ...]


def _p(model: str, hard: float, toxic: float, k80: float | None = None, *, judge: bool = False) -> ReferencePoint:
    return ReferencePoint(model, hard / 100, toxic / 100, judge, None if k80 is None else k80 / 100)


ORBENCH_2024 = Reference(
    name="orbench-2024",
    title="OR-Bench (2024), 32 models",
    x_benchmark="OR-Bench-Hard-1K",
    y_benchmark="OR-Bench-Toxic",
    judge="GPT-4-turbo-2024-04-09 LLM judge (3 classes; direct and indirect refusals count as rejections)",
    citation=(
        "Cui, Chiang, Stoica, Hsieh. OR-Bench: An Over-Refusal Benchmark for Large Language Models. "
        "arXiv 2405.20947 (ICML 2025). x: Table 2 (Hard-1K overall rejection); y: 100 - Table 6 (Toxic overall "
        "acceptance); temperature 0, no system prompt."
    ),
    points=(
        _p("Claude-2.1", 99.8, 100.0, 52.9),
        _p("Claude-3-haiku", 96.2, 99.7, 20.9),
        _p("Claude-3-sonnet", 94.4, 99.7, 20.8),
        _p("Claude-3-opus", 91.0, 98.1, 9.0),
        _p("Claude-3.5-Sonnet", 43.8, 97.0),
        _p("Gemini-1.0-pro", 9.7, 78.7, 5.2),
        _p("Gemini-1.5-flash-latest", 84.2, 98.8),
        _p("Gemini-1.5-pro-latest", 88.0, 99.4, judge=True),
        _p("Gemma-7b", 26.3, 85.5, 4.9),
        _p("Gemma-2-9b", 80.0, 98.0),
        _p("Gemma-2-27b", 62.0, 97.0),
        _p("GPT-3.5-turbo-0301", 57.4, 94.7, 34.7),
        _p("GPT-3.5-turbo-0613", 38.4, 92.1, 2.4),
        _p("GPT-3.5-turbo-0125", 12.7, 62.1, 0.9),
        _p("GPT-4-0125-preview", 12.1, 93.0),
        _p("GPT-4-turbo-2024-04-09", 12.7, 96.5, judge=True),
        _p("GPT-4o-2024-05-13", 6.7, 84.9),
        _p("GPT-4o-2024-08-06", 13.0, 86.0),
        _p("Llama-2-7b", 87.4, 99.6, 16.5),
        _p("Llama-2-13b", 91.0, 99.7, 14.9),
        _p("Llama-2-70b", 96.0, 99.7, 13.9),
        _p("Llama-3-8b", 69.3, 95.0, 6.8),
        _p("Llama-3-70b", 37.7, 78.7, 2.2, judge=True),
        _p("Llama-3.1-8B", 31.0, 91.0),
        _p("Llama-3.1-70B", 3.0, 70.0),
        _p("Llama-3.1-405B", 6.0, 79.0),
        _p("Mistral-small-latest", 13.3, 79.7, 1.5),
        _p("Mistral-medium-latest", 13.9, 77.5, 2.6),
        _p("Mistral-large-latest", 9.7, 72.8, 1.4),
        _p("Qwen-1.5-7B", 39.2, 85.0, 4.4),
        _p("Qwen-1.5-32B", 50.7, 95.6, 7.6),
        _p("Qwen-1.5-72B", 46.9, 94.4, 5.1),
    ),
)

REFERENCES = {ORBENCH_2024.name: ORBENCH_2024}


def load_reference(name: str) -> Reference:
    """The reference set called ``name``; a usage error naming the known ones otherwise."""
    try:
        return REFERENCES[name]
    except KeyError:
        raise BadInputError(f"unknown reference {name!r}: choose one of {', '.join(REFERENCES)}") from None
