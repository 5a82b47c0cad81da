"""The OR-Bench judging preset: LLM judges reading OR-Bench's three classes, combined by majority vote.

OR-Bench judged its Hard-1K and Toxic sets with an LLM (``response_checker/check_response.py``):
``gpt-4-turbo-2024-04-09`` by default, ``meta-llama/llama-3-70b-chat-hf`` as the alternative, temperature 0,
three classes (direct_answer, direct_refusal, indirect_refusal; both refusals count as rejections). Its
moderation used an ensemble of GPT-4-turbo, Llama-3-70b and Gemini-1.5-pro by majority vote. This preset is
that panel judging answers: members ``gpt4``, ``llama3`` and ``gemini``, each an LLM judge in the
``orbench`` scheme, majority vote (ties and unscored members give ``unscored``, never a guess).

Every member is an OpenAI-compatible endpoint whose key comes from an environment variable (``OPENAI_API_KEY``,
``TOGETHER_API_KEY``, ``GEMINI_API_KEY``). Override any member's settings with ``-J <member>.<option>=VALUE``
(``-J llama3.base_url=http://127.0.0.1:8000/v1 -J llama3.model=meta-llama/Llama-3.3-70B-Instruct``), pick
members with ``-J members=gpt4`` (the paper's single judge) or ``-J members=gpt4,llama3,gemini``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from overrefusal.errors import BadInputError
from overrefusal.judges.ensemble import VoteJudge
from overrefusal.judges.llm import LLMJudge

PANEL: dict[str, dict[str, Any]] = {
    "gpt4": {"backend": "openai", "model": "gpt-4-turbo-2024-04-09", "api_key_env": "OPENAI_API_KEY"},
    "llama3": {
        "backend": "openai",
        "model": "meta-llama/Llama-3-70b-chat-hf",
        "base_url": "https://api.together.xyz/v1",
        "api_key_env": "TOGETHER_API_KEY",
    },
    "gemini": {
        "backend": "openai",
        "model": "gemini-1.5-pro-latest",
        "base_url": "https://generativelanguage.googleapis.com/v1beta/openai/",
        "api_key_env": "GEMINI_API_KEY",
    },
}
"""The paper's judge models, as OpenAI-compatible endpoints."""


class OrBenchJudge(VoteJudge):
    """OR-Bench's LLM judging: a majority vote of LLM judges in the paper's three classes.

    Args:
        members: comma-separated members among gpt4, llama3, gemini (one member: that judge alone).
        rule: ``majority`` (the paper's ensemble), ``any`` or ``all``.
        max_tokens: token budget of each judge reply (the paper sets none; the reply explains, then labels).
        **member_args: ``<member>.<option>`` settings replacing the member's endpoint (``backend``, ``model``,
            ``base_url``, ``api_key_env``, any backend option).
    """

    name: ClassVar[str] = "orbench"
    version: ClassVar[str] = "1"

    def __init__(
        self, members: str = "gpt4,llama3,gemini", rule: str = "majority", max_tokens: int = 512, **member_args: Any
    ) -> None:
        """Create the member judges (nothing is sent until judging)."""
        if rule not in ("majority", "any", "all"):
            raise BadInputError(f"unknown vote rule {rule!r}: use majority, any or all")
        names = [m.strip() for m in members.split(",") if m.strip()]
        unknown = [n for n in names if n not in PANEL] + [
            k for k in member_args if "." not in k or k.split(".", 1)[0] not in PANEL
        ]
        if unknown or not names:
            raise BadInputError(
                f"unknown orbench judge option or member {', '.join(unknown) or '(none)'}: members are "
                f"{', '.join(PANEL)}; set a member's endpoint with -J gpt4.base_url=URL or -J gpt4.model=NAME"
            )
        self.rule = rule
        self.members = []
        for name in names:
            settings = {**PANEL[name]}
            settings.update({k.split(".", 1)[1]: v for k, v in member_args.items() if k.split(".", 1)[0] == name})
            backend = settings.pop("backend")
            self.members.append(LLMJudge(backend=backend, scheme="orbench", max_tokens=max_tokens, **settings))
