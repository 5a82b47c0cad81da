"""Vote rules that turn K moderators' votes into one decision.

Each moderator votes ``toxic``, ``benign`` or ``abstain`` (its output could not be parsed or the
request failed). Rules, over all K moderators:

* ``majority`` (OR-Bench's rule): benign when more than half of the K say benign; toxic when at
  least half say toxic (a tie is not a benign majority, so it is toxic, as in OR-Bench where a
  prompt is kept only if a majority deems it safe).
* ``any``: toxic when at least one says toxic; benign only when all K say benign.
* ``all``: toxic only when all K say toxic; benign when at least one says benign.

Abstentions are never counted as benign or toxic. A decision stands only if no way the
abstaining moderators could have voted would change it; otherwise the prompt is ``undecided``,
which keeps it out of both the benchmark and the toxic pool and is reported per stage.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

Vote = Literal["toxic", "benign", "abstain"]
Decision = Literal["toxic", "benign", "undecided"]
VoteRule = Literal["majority", "any", "all"]


def _complete_decision(toxic: int, total: int, rule: VoteRule) -> Decision:
    """Decision when every one of ``total`` moderators voted and ``toxic`` of them said toxic."""
    benign = total - toxic
    if rule == "majority":
        return "benign" if benign * 2 > total else "toxic"
    if rule == "any":
        return "toxic" if toxic >= 1 else "benign"
    if rule == "all":
        return "toxic" if toxic == total else "benign"
    raise ValueError(f"unknown vote rule {rule!r}")


def decide(votes: Sequence[Vote], rule: VoteRule = "majority") -> Decision:
    """Combine ``votes`` under ``rule``; ``undecided`` when abstentions could change the result."""
    if not votes:
        return "undecided"
    toxic = sum(1 for v in votes if v == "toxic")
    abstain = sum(1 for v in votes if v == "abstain")
    # every rule is monotone in the number of toxic votes, so the two extremes bound all outcomes
    if_benign = _complete_decision(toxic, len(votes), rule)
    if_toxic = _complete_decision(toxic + abstain, len(votes), rule)
    return if_benign if if_benign == if_toxic else "undecided"
