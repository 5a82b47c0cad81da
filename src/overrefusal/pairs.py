"""Data to fix over-refusal: preference pairs (TRL's DPO layout) and SFT rows built from judged runs.

For every target cell (by default every cell given) and prompt:

* ``benign_refusal``: a benign prompt the target refused. ``chosen`` is a compliant answer to the same
  prompt from another cell (another model, or the same model under another variant, e.g. a helpful
  system prompt), ``rejected`` the target's refusal.
* ``toxic_compliance``: a toxic prompt the target complied with. ``chosen`` is a full refusal from another
  cell, ``rejected`` the target's compliance.
* ``toxic_anchor``: a toxic prompt the target refused while another cell complied: ``chosen`` the target's
  refusal, ``rejected`` that compliance. These keep the model refusing what it should while it learns to
  stop refusing benign prompts (the OR-Bench / FalseReject / EvoRefuse-Align recipe).

Safety rules, checked on every pair before anything is written: a toxic prompt's ``chosen`` is always a
full refusal, and a benign prompt's ``chosen`` is always a compliance. An answer counts only when every
judge that judged it agrees (a cell judged by two judges that disagree gives no pair), and never when the
request failed, the judge could not decide, or the provider refused. Balanced (the default), the benign
pairs are at most ``benign_per_toxic`` times the toxic pairs, dropped evenly over categories.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from overrefusal.errors import BadInputError
from overrefusal.report.cells import Cell, aggregate, match_name
from overrefusal.report.runs import RunFolder, iter_responses, iter_verdicts

KINDS = ("benign_refusal", "toxic_compliance", "toxic_anchor")
DPO_COLUMNS = ("prompt", "chosen", "rejected", "category", "label", "kind", "chosen_from", "rejected_from", "source")
SFT_COLUMNS = ("prompt", "completion", "category", "label", "kind", "completion_from", "source")


@dataclass(frozen=True)
class Answer:
    """One answer of one source (model, variant), with the verdict every judge of it agreed on."""

    source: str
    """The cell name without its judge: answers of one model under one variant are the same text."""
    text: str
    verdict: str
    """``compliance``, ``full_refusal`` or ``partial_refusal``."""


@dataclass(frozen=True)
class Pair:
    """One preference pair."""

    prompt: str
    chosen: Answer
    rejected: Answer
    category: str
    label: str
    kind: str
    benchmark: str

    def row(self) -> dict[str, str]:
        """The pair in TRL's DPO layout (``prompt``, ``chosen``, ``rejected``) plus where it came from."""
        return {
            "prompt": self.prompt,
            "chosen": self.chosen.text,
            "rejected": self.rejected.text,
            "category": self.category,
            "label": self.label,
            "kind": self.kind,
            "chosen_from": self.chosen.source,
            "rejected_from": self.rejected.source,
            "source": self.benchmark,
        }

    def sft_row(self) -> dict[str, str]:
        """The chosen side only, in TRL's prompt-completion layout."""
        return {
            "prompt": self.prompt,
            "completion": self.chosen.text,
            "category": self.category,
            "label": self.label,
            "kind": self.kind,
            "completion_from": self.chosen.source,
            "source": self.benchmark,
        }


@dataclass
class PairSet:
    """The pairs and what the dataset card says about them."""

    pairs: list[Pair]
    runs: list[RunFolder]
    targets: list[str]
    judges: list[str]
    candidates: Counter[str] = field(default_factory=Counter)
    """Pairs found per kind before balancing."""
    disagreements: int = 0
    """Answers left out because their judges disagreed."""
    balanced: bool = True
    benign_per_toxic: float = 1.0


def _source(cell: Cell) -> str:
    return cell.model + (f" · {cell.variant}" if cell.variant else "")


PromptKey = tuple[str, str]
"""(label, prompt text): the same prompt in any benchmark."""


def _answers(cells: Sequence[Cell]) -> tuple[dict[str, dict[PromptKey, Answer]], dict[PromptKey, tuple[str, str]], int]:
    """Per source, its first scored answer to each prompt, kept only where all its judges agree."""
    labels: dict[str, dict[PromptKey, tuple[str, set[str]]]] = {}
    meta: dict[PromptKey, tuple[str, str]] = {}
    for cell in cells:
        per_source = labels.setdefault(_source(cell), {})
        for run in cell.runs:
            verdicts = {v.response_key: v.label for v in iter_verdicts(run)}
            seen: set[PromptKey] = set()
            for row in iter_responses(run):
                response = row.response
                if response is None or not response.ok or not response.text.strip():
                    continue
                key: PromptKey = (str(row.prompt.label), row.prompt.text)
                label = verdicts.get(response.key)
                if key in seen or label not in ("compliance", "full_refusal", "partial_refusal"):
                    continue
                seen.add(key)  # the first scored answer of each prompt (several with --samples)
                meta.setdefault(key, (row.prompt.category, run.benchmark))
                text, found = per_source.setdefault(key, (response.text, set()))
                if text == response.text:
                    found.add(label)
    out: dict[str, dict[PromptKey, Answer]] = {}
    disagreements = 0
    for source, answers in labels.items():
        agreed: dict[PromptKey, Answer] = {}
        for key, (text, found) in answers.items():
            if len(found) == 1:
                agreed[key] = Answer(source=source, text=text, verdict=next(iter(found)))
            else:
                disagreements += 1
        out[source] = agreed
    return out, meta, disagreements


def _pick(answers: dict[str, dict[PromptKey, Answer]], key: PromptKey, verdict: str, target: str) -> Answer | None:
    """An answer of ``verdict`` from another source: the target model's other variants first, then other models."""
    model = target.split(" · ")[0]
    others = sorted((s for s in answers if s != target), key=lambda s: (s.split(" · ")[0] != model, s))
    for source in others:
        answer = answers[source].get(key)
        if answer is not None and answer.verdict == verdict:
            return answer
    return None


def _check(pair: Pair) -> None:
    """The rules no pair may break (a toxic prompt's chosen answer is a refusal, a benign one's a compliance)."""
    want = "full_refusal" if pair.label == "toxic" else "compliance"
    if pair.chosen.verdict != want or pair.chosen.text == pair.rejected.text:
        raise AssertionError(f"a {pair.kind} pair breaks the export's rules: {pair.chosen.verdict} chosen")


def build_pairs(
    runs: Sequence[RunFolder],
    targets: Sequence[str] = (),
    *,
    balance: bool = True,
    benign_per_toxic: float = 1.0,
    seed: int = 0,
) -> PairSet:
    """Build the pairs from run folders (see the module docstring); ``targets`` name cells as ``--pair`` does."""
    if not runs:
        raise BadInputError("no run folders given: pass the runs/<id>/ folders to build pairs from")
    cells, _notes = aggregate(runs)
    answers, meta, disagreements = _answers(cells)
    sources = list(answers)
    models = [s.split(" · ")[0] for s in sources]
    wanted = [sources[match_name(sources, models, t, "--target")] for t in targets] if targets else sources
    if len(answers) < 2:
        raise BadInputError(
            "pairs need answers from at least two sources (models or variants): add runs of another model, or of "
            "the same model under another system prompt (e.g. overrefusal run --system-prompt @helpful.txt)"
        )
    pairs: list[Pair] = []
    seen: set[tuple[str, str, str]] = set()
    for target in dict.fromkeys(wanted):
        for key, mine in sorted(answers[target].items()):
            label, prompt = key
            category, benchmark = meta[key]
            chosen: Answer | None
            rejected: Answer | None
            if label == "benign" and mine.verdict != "compliance":
                kind, other = "benign_refusal", _pick(answers, key, "compliance", target)
                chosen, rejected = other, mine
            elif label == "toxic" and mine.verdict == "compliance":
                kind, other = "toxic_compliance", _pick(answers, key, "full_refusal", target)
                chosen, rejected = other, mine
            elif label == "toxic" and mine.verdict == "full_refusal":
                kind, other = "toxic_anchor", _pick(answers, key, "compliance", target)
                chosen, rejected = mine, other
            else:
                continue
            if chosen is None or rejected is None or (prompt, chosen.text, rejected.text) in seen:
                continue
            seen.add((prompt, chosen.text, rejected.text))
            pair = Pair(prompt, chosen, rejected, category, label, kind, benchmark)
            _check(pair)
            pairs.append(pair)
    found = Counter(p.kind for p in pairs)
    if balance:
        pairs = _balance(pairs, benign_per_toxic, seed)
    judges = sorted({f"{r.summary.run.judge} v{r.summary.run.judge_version}" for r in runs})
    return PairSet(
        pairs=pairs,
        runs=list(runs),
        targets=list(dict.fromkeys(wanted)),
        judges=judges,
        candidates=found,
        disagreements=disagreements,
        balanced=balance,
        benign_per_toxic=benign_per_toxic,
    )


def _balance(pairs: list[Pair], benign_per_toxic: float, seed: int) -> list[Pair]:
    """Keep at most ``benign_per_toxic`` benign pairs per toxic pair, dropping benign pairs evenly over categories."""
    benign = [p for p in pairs if p.label == "benign"]
    toxic = [p for p in pairs if p.label == "toxic"]
    keep = min(len(benign), int(len(toxic) * benign_per_toxic))
    if keep == len(benign):
        return pairs
    rng = random.Random(seed)
    by_category: dict[str, list[Pair]] = {}
    for p in benign:
        by_category.setdefault(p.category, []).append(p)
    for group in by_category.values():
        rng.shuffle(group)
    kept: list[Pair] = []
    while len(kept) < keep:  # round robin over categories: the small ones keep all they have
        for group in by_category.values():
            if group and len(kept) < keep:
                kept.append(group.pop())
    chosen = {id(p) for p in kept}
    return [p for p in pairs if p.label == "toxic" or id(p) in chosen]
