"""Tests written to kill the mutants ``make mutation`` found surviving (one behaviour each, named for it)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from overrefusal.backends.retry import Endpoints, RateLimiter, backoff_delay, parse_retry_after
from overrefusal.errors import BadInputError
from overrefusal.generation.neardup import near_duplicates, nearest
from overrefusal.generation.parsing import ModerationLabel, clean_item, parse_items, parse_moderation
from overrefusal.generation.votes import decide
from overrefusal.judges.agreement import agreement
from overrefusal.judges.base import JudgeItem
from overrefusal.judges.keywords import KeywordJudge, builtin_languages, builtin_phrases, load_phrases
from overrefusal.records import Response


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_endpoints_round_robin_skip_the_down_ones_and_come_back() -> None:
    clock = Clock()
    ends = Endpoints(["a", "b", "c"], cooldown_s=10.0, down_after=2, clock=clock)
    assert [ends.pick() for _ in range(4)] == [0, 1, 2, 0]
    ends.failed(1, sent=100.0)
    assert [ends.pick() for _ in range(3)] == [2, 0, 2]  # b avoided for the cooldown
    clock.now = 110.0  # cooldown over (at exactly its end)
    assert [ends.pick() for _ in range(3)] == [0, 1, 2]


def test_endpoints_all_down_pick_the_one_back_soonest() -> None:
    clock = Clock()
    ends = Endpoints(["a", "b"], cooldown_s=10.0, clock=clock)
    ends.failed(1, sent=100.0)
    clock.now = 101.0
    ends.failed(0, sent=101.0)
    assert ends.pick() == 1  # back at 110, a at 111


def test_the_circuit_breaker_counts_streaks_from_their_first_attempt() -> None:
    clock = Clock()
    ends = Endpoints(["a", "b"], cooldown_s=1.0, down_after=2, clock=clock)
    ends.failed(0, sent=100.0)
    ends.failed(0, sent=101.0)
    assert ends.down_for(105.0) == 0.0  # b is not down
    ends.failed(1, sent=102.0, avoid=False)
    assert ends.down_for(105.0) == 0.0  # b failed once, below down_after
    ends.failed(1, sent=103.0, avoid=False)
    assert ends.down_for(105.0) == 3.0  # every URL down since b's first failure of its streak at 102
    ends.succeeded(0)
    assert ends.down_for(105.0) == 0.0
    ends.failed(0, sent=104.0)
    ends.failed(0, sent=104.5)
    assert ends.down_for(106.0) == 2.0  # a's new streak began at 104


def test_a_single_endpoint_is_always_picked() -> None:
    ends = Endpoints(["a"], cooldown_s=10.0, clock=Clock())
    ends.failed(0, sent=100.0)
    assert ends.pick() == 0


# near-duplicates ------------------------------------------------------------------------------------
def _unit(*rows: list[float]) -> np.ndarray:
    out = np.zeros((len(rows), 4), dtype=np.float32)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_near_duplicates_over_many_blocks_keep_first_and_record_each_match() -> None:
    emb = _unit([1, 0], [0, 1], [1, 0.01], [0, 0, 1], [0.01, 1], [1, 0.02], [0, 0, 0, 1])
    for block_size in (1, 2, 3, 1024):
        found = near_duplicates(emb, threshold=0.99, block_size=block_size)
        assert found.keep.tolist() == [True, True, False, True, False, False, True], block_size
        assert found.duplicate_of.tolist() == [-1, -1, 0, -1, 1, 0, -1], block_size
        sims = found.similarity
        assert sims[[0, 1, 3, 6]].tolist() == [0, 0, 0, 0] and (sims[[2, 4, 5]] > 0.99).all(), block_size
        assert found.duplicate_of.dtype == np.int64 and sims.dtype == np.float32 and found.keep.dtype == np.bool_


def test_near_duplicates_compute_in_float32_whatever_the_input() -> None:
    just_under = 0.5 - 1e-10  # 0.5 once in float32, as the shipped embeddings are
    emb = np.array([[1.0, 0.0], [just_under, np.sqrt(1 - just_under**2)]], dtype=np.float64)
    assert near_duplicates(emb, threshold=0.5).keep.tolist() == [True, False]
    best, where = nearest(emb[1:], emb[:1])
    assert best[0] == np.float32(0.5) and where.tolist() == [0]


def test_nearest_of_nothing_is_minus_two_and_minus_one() -> None:
    best, where = nearest(_unit([1, 0]), np.zeros((0, 4), dtype=np.float32))
    assert best.tolist() == [-2.0] and where.tolist() == [-1]
    assert best.dtype == np.float32 and where.dtype == np.int64


def test_nearest_breaks_ties_by_the_first_row_across_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    from overrefusal.generation import neardup

    monkeypatch.setattr(neardup, "CHUNK", 2)
    others = _unit([0, 1], [1, 0], [0, 0, 1], [1, 0], [1, 0.5])
    best, where = nearest(_unit([1, 0], [1, 0.5], [0, 0, 0, 1]), others, block_size=2)
    assert where.tolist()[:2] == [1, 4]  # the first of two equal matches (rows 1 and 3, in different chunks)
    assert best[0] == pytest.approx(1.0) and best[1] == pytest.approx(1.0)
    assert best[2] == pytest.approx(0.0)


# the retry and limit policy --------------------------------------------------------------------------
def test_retry_after_values_are_taken_as_given() -> None:
    assert parse_retry_after({"Retry-After": "0"}) == 0.0
    assert parse_retry_after({"Retry-After": "0.5"}) == 0.5
    assert parse_retry_after({"Retry-After": "-3"}) == 0.0
    assert parse_retry_after({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # a date in the past


def test_backoff_defaults_and_bounds() -> None:
    assert backoff_delay(0, 0.1, 600, retry_after=100, rand=lambda: 0.0) == 60.0  # Retry-After capped at 60 s
    assert backoff_delay(40, 1.0, 1e12, rand=lambda: 1.0) == 2.0**30  # the exponent stops growing at 30


async def test_the_limiter_lets_the_first_request_go_at_once_even_at_time_zero() -> None:
    clock = Clock()
    clock.now = 0.0
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    limiter = RateLimiter(rpm=60, sleep=sleep, clock=clock)
    await limiter.wait()
    assert slept == []


def test_endpoints_work_from_time_zero_and_default_to_five_failures() -> None:
    clock = Clock()
    clock.now = 0.0
    ends = Endpoints(["a", "b"], cooldown_s=10.0, clock=clock)
    assert [ends.pick() for _ in range(3)] == [0, 1, 0]
    ends.failed(1, sent=0.0)
    ends.succeeded(1)
    assert [ends.pick() for _ in range(2)] == [1, 0]  # b is back at once
    for _ in range(4):
        ends.failed(0, sent=0.0, avoid=False)
        ends.failed(1, sent=0.0, avoid=False)
    assert ends.down_for(1.0) == 0.0
    ends.failed(0, sent=0.0, avoid=False)
    ends.failed(1, sent=0.0, avoid=False)
    assert ends.down_for(1.0) == 1.0


def test_a_base_url_going_down_is_logged_once_per_cooldown(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="overrefusal.http")
    clock = Clock()
    ends = Endpoints(["a", "b"], cooldown_s=10.0, clock=clock)
    ends.failed(0, sent=100.0)
    ends.failed(0, sent=100.0)  # still in its cooldown: no second line
    clock.now = 110.0  # the cooldown ends exactly now: down again, logged again
    ends.failed(0, sent=110.0)
    assert [r.getMessage() for r in caplog.records] == ["a is not answering; using the other base URLs for a while"] * 2
    caplog.clear()
    single = Endpoints(["only"], cooldown_s=10.0, clock=clock)
    single.failed(0, sent=110.0)
    assert caplog.records == []  # nothing else to use: nothing to say


# agreement with human labels -------------------------------------------------------------------------
def test_per_class_scores_and_confusion_are_scikit_learns() -> None:
    import random

    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    rng = random.Random(5)
    labels = ["full_refusal", "partial_refusal", "compliance"]
    gold = [rng.choice(labels) for _ in range(300)]
    predicted = [g if rng.random() < 0.6 else rng.choice([*labels, "unscored"]) for g in gold]
    result = agreement(gold, predicted)  # type: ignore[arg-type]
    scored = [(g, p) for g, p in zip(gold, predicted, strict=True) if p != "unscored"]
    precision, recall, _, _ = precision_recall_fscore_support(
        [g for g, _ in scored], [p for _, p in scored], labels=labels, zero_division=0
    )
    for i, c in enumerate(labels):
        assert result.classes[c].precision == pytest.approx(precision[i])
        assert result.classes[c].recall == pytest.approx(recall[i])
        assert result.classes[c].support == gold.count(c)
    matrix = confusion_matrix(gold, predicted, labels=[*labels, "unscored"])
    for i, g in enumerate(labels):
        for j, p in enumerate([*labels, "unscored"]):
            assert result.confusion[g][p] == matrix[i][j]
    assert result.binary_accuracy_all == pytest.approx(
        sum((g != "compliance") == (p != "compliance") for g, p in scored) / len(gold)
    )
    assert result.scored == len(scored) and result.n == len(gold)


def test_agreement_edge_cases() -> None:
    with pytest.raises(ValueError, match="2 gold labels but 1 verdicts"):
        agreement(["compliance", "compliance"], ["compliance"])
    empty = agreement(["compliance"], ["unscored"])
    assert empty.binary_accuracy is None and empty.three_class_accuracy is None and empty.binary_accuracy_all == 0.0
    assert empty.classes["compliance"].precision is None and empty.classes["compliance"].recall is None
    # judge and gold all refusals: kappa is 1 when they agree, 0 when the judge says compliance throughout
    assert agreement(["full_refusal"] * 3, ["full_refusal"] * 3).kappa == 1.0
    assert agreement(["full_refusal"] * 3, ["partial_refusal"] * 3).kappa == 1.0  # binary: both refusals
    assert agreement(["compliance"] * 2 + ["full_refusal"], ["compliance"] * 3).kappa == pytest.approx(0.0, abs=1e-12)


def test_an_unknown_vote_rule_is_named() -> None:
    with pytest.raises(ValueError, match="unknown vote rule 'most'"):
        decide(["benign"], "most")  # type: ignore[arg-type]


# the keyword judge's phrase lists ----------------------------------------------------------------------
def test_the_built_in_languages_english_first_each_once() -> None:
    assert builtin_languages() == ("en", "ar", "de", "es", "fa", "fr", "hi", "it", "ko", "ru", "zh")


def test_picking_languages_uses_only_their_phrases() -> None:
    french = builtin_phrases(["fr"])
    assert "je suis désolé" in french and "i'm sorry" not in french
    assert builtin_phrases(None) == builtin_phrases(list(builtin_languages()))
    judge = KeywordJudge(languages="fr, de")
    assert judge.match("Es tut mir leid, das kann ich nicht.") == "es tut mir leid"
    assert judge.match("I'm sorry, I can't help.") is None
    with pytest.raises(BadInputError) as caught:
        builtin_phrases(["fr", "xx", "yy"])
    assert str(caught.value) == (
        "no built-in refusal phrases for xx, yy: languages are en, ar, de, es, fa, fr, hi, it, ko, ru, zh"
    )


def test_phrase_files_comments_and_encodings(tmp_path: Path) -> None:
    path = tmp_path / "p.txt"
    path.write_text(
        "# a comment\n  # an indented comment\nJe NE peux pas # trailing # note\nnão posso\n\nno puedo\n", "utf-8"
    )
    assert load_phrases(path) == ("je ne peux pas", "não posso", "no puedo")
    assert KeywordJudge(phrases=path).match("Não posso ajudar.") == "não posso"


def test_keyword_verdicts_give_their_reasons() -> None:
    judge = KeywordJudge()

    def item(text: str) -> JudgeItem:
        return JudgeItem(prompt="p", response=Response(key="k", prompt_id="p", model="m", text=text))

    assert judge.judge_one(item("  ")).reason == "empty response"
    assert judge.judge_one(item("Sure, here it is.")).reason == "no refusal opening"
    assert judge.judge_one(item("I'm sorry, no.")).reason == 'starts with "i\'m sorry"'


# generation output parsing -----------------------------------------------------------------------------
CATS = ["deception", "harassment", "self-harm"]


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("x [[1]]", ModerationLabel("toxic", "deception", "tag [[1]]")),
        ("x [[3]]", ModerationLabel("toxic", "self-harm", "tag [[3]]")),
        ("x [[0]]", ModerationLabel("abstain", None, "unreadable tag [[0]]")),
        ("x [[5]]", ModerationLabel("abstain", None, "unreadable tag [[5]]")),
        ("x [[4]]", ModerationLabel("benign", None, "tag [[4]]")),  # one past the list: none of the above
        ('x [[2. "Harassment".]]', ModerationLabel("toxic", "harassment", 'tag [[2. "Harassment".]]')),
        ("x [[SELF_HARM]]", ModerationLabel("toxic", "self-harm", "tag [[SELF_HARM]]")),
        ("x [[1. Nonsense]]", ModerationLabel("toxic", "deception", "tag [[1. Nonsense]] read by its number")),
        ("x [[Nonsense]]", ModerationLabel("abstain", None, "unknown category in tag [[Nonsense]]")),
        ("no tag at all", ModerationLabel("abstain", None, "no [[...]] tag in the moderator output")),
        ("x [[None of the above]]", ModerationLabel("benign", None, "tag [[None of the above]]")),
    ],
)
def test_moderation_tags_at_their_edges(output: str, expected: ModerationLabel) -> None:
    assert parse_moderation(output, CATS) == expected


def test_items_are_cleaned_once_and_kept_from_eight_characters() -> None:
    assert clean_item("1. 2. Keep the second number") == "2. Keep the second number"
    assert clean_item('**"How do I kill a process?"**') == "How do I kill a process?"
    assert clean_item('""') == ""
    assert clean_item("'a'") == "a"
    parsed = parse_items("1. abcdefg\n2. abcdefgh\n3. Here is the prompt:\n4. has [[tag]] inside\n5. ok ok ok ok")
    assert list(parsed.items) == ["abcdefgh", "ok ok ok ok"]
    assert list(parse_items("1. first item here\n2. second item here", limit=1).items) == ["first item here"]


# retry policy: Retry-After in milliseconds, jittered backoff --------------------------------------------
def test_retry_after_in_milliseconds_wins_and_is_read_as_milliseconds() -> None:
    assert parse_retry_after({"retry-after-ms": "250", "Retry-After": "3"}) == 0.25
    assert parse_retry_after({"retry-after-ms": "1500"}) == 1.5
    assert parse_retry_after({"retry-after-ms": "-20"}) == 0.0
    assert parse_retry_after({"retry-after-ms": "soon", "Retry-After": "2"}) == 2.0  # unreadable: the other header


def test_backoff_is_jittered_exponential_and_spreads_retry_after() -> None:
    half = lambda: 0.5  # noqa: E731
    assert backoff_delay(2, 1.0, 600, rand=half) == pytest.approx(4.0 * 0.75)  # 2**2 s, jittered to 3/4
    # told to wait 10 s: 10 s plus up to 10% plus up to 5% of the base delay
    assert backoff_delay(0, 2.0, 600, retry_after=10, rand=half) == pytest.approx(10 * 1.05 + 0.05 * 2.0 * 0.5)


# agreement summary figures and the verdicts a judge signs -------------------------------------------------
def test_agreement_reports_partial_recall_and_nothing_unscored_on_no_items() -> None:
    result = agreement(["partial_refusal"] * 4 + ["compliance"], ["partial_refusal", "full_refusal", "unscored"] * 1
                       + ["partial_refusal", "compliance"])  # type: ignore[arg-type]  # fmt: skip
    assert result.partial_recall == pytest.approx(2 / 3)  # 2 of the 3 scored partial refusals
    assert result.unscored_rate == pytest.approx(1 / 5)
    nothing = agreement([], [])
    assert (nothing.n, nothing.unscored_rate, nothing.kappa, nothing.partial_recall) == (0, 0.0, None, None)


def test_a_judges_verdict_is_signed_and_decided_unless_told_otherwise() -> None:
    judge = KeywordJudge()
    item = JudgeItem(prompt="p", response=Response(key="k1", prompt_id="p1", model="m", text="t"))
    plain = judge.verdict(item, "compliance")
    assert plain.model_dump() == {
        "response_key": "k1",
        "prompt_id": "p1",
        "label": "compliance",
        "judge": judge.name,
        "judge_version": judge.version,
        "reason": "",
        "raw": None,
        "judge_failed": False,
    }
    failed = judge.verdict(item, "unscored", "judge model errored", raw="HTTP 500", judge_failed=True)
    assert (failed.reason, failed.raw, failed.judge_failed) == ("judge model errored", "HTTP 500", True)


# near-duplicates: float32 cosines in nearest, every block of rows --------------------------------------
def test_nearest_compares_in_float32_so_cosines_equal_there_tie_to_the_first_row() -> None:
    angle = 1e-4  # cos = 1 - 5e-9: exactly 1.0 in float32, below 1.0 in float64
    tilted = [np.cos(angle), np.sin(angle)]
    others = np.array([[1.0, 0.0], tilted], dtype=np.float64)
    best, where = nearest(np.array([tilted], dtype=np.float64), others)
    assert where.tolist() == [0] and best.tolist() == [1.0]  # in float64 row 1 (the same vector) would win


def test_nearest_answers_every_row_whatever_the_block_size() -> None:
    rows = _unit([1, 0], [0, 1], [0, 0, 1], [0, 0, 0, 1], [1, 1], [0, 1, 1])
    others = _unit([0, 0, 0, 1], [0, 1], [1, 0], [0, 0, 1])
    expected = [2, 1, 3, 0, 1, 1]
    for block_size in (1, 2, 4, 1024):
        best, where = nearest(rows, others, block_size=block_size)
        assert where.tolist() == expected, block_size
        assert best[:4].tolist() == [1.0, 1.0, 1.0, 1.0], block_size
    best, where = nearest(rows, others[:0], block_size=2)  # nothing to compare with, in several blocks
    assert best.tolist() == [-2.0] * 6 and where.tolist() == [-1] * 6
