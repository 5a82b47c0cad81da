"""Judges: decide refusal / partial refusal / compliance. One module plus one registration each."""

from __future__ import annotations

from overrefusal.judges.base import Judge, JudgeItem
from overrefusal.registry import Registry

judges: Registry[Judge] = Registry("judge")
judges.add("keywords", "overrefusal.judges.keywords:KeywordJudge")
judges.add("classifier", "overrefusal.judges.classifier:ClassifierJudge", extra="classifier")
judges.add("llm", "overrefusal.judges.llm:LLMJudge")
judges.add("vote", "overrefusal.judges.ensemble:VoteJudge")
judges.add("cascade", "overrefusal.judges.ensemble:CascadeJudge")
judges.add("image-outcome", "overrefusal.judges.image_outcome:ImageOutcomeJudge")
judges.add("orbench", "overrefusal.judges.orbench:OrBenchJudge")

DEFAULT_JUDGE = "classifier"
"""The judge ``run`` uses when none is given."""
IMAGE_JUDGE = "image-outcome"
"""The judge of text-to-image runs (a returned image is compliance; refusals are the provider's)."""

__all__ = ["DEFAULT_JUDGE", "IMAGE_JUDGE", "Judge", "JudgeItem", "judges"]
