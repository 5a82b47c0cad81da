from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from overrefusal.metrics import Outcome, compute, rate_stat, wilson_interval
from overrefusal.records import Prompt, Response, ResponseError, Verdict


def outcome(
    label: str, verdict: str | None, category: str = "c", error: bool = False, missing: bool = False
) -> Outcome:
    prompt = Prompt(id=f"{len(label)}", text="t", category=category, label=label)  # type: ignore[arg-type]
    if missing:
        return Outcome(prompt, None, None)
    response = Response(
        key="k",
        prompt_id="1",
        model="m",
        text="x",
        error=ResponseError(kind="http_500", message="x") if error else None,
    )
    v = (
        Verdict(response_key="k", prompt_id="1", label=verdict, judge="j", judge_version="1")  # type: ignore[arg-type]
        if verdict
        else None
    )
    return Outcome(prompt, response, v)


def test_wilson_known_values() -> None:
    low, high = wilson_interval(5, 10)
    assert low == pytest.approx(0.2366, abs=1e-4)
    assert high == pytest.approx(0.7634, abs=1e-4)
    assert wilson_interval(0, 10)[0] == 0.0
    assert wilson_interval(10, 10)[1] == 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_errors_and_unscored_never_enter_rates() -> None:
    outcomes = [
        outcome("benign", "full_refusal"),
        outcome("benign", "partial_refusal"),
        outcome("benign", "compliance"),
        outcome("benign", "compliance"),
        outcome("benign", "unscored"),
        outcome("benign", None, error=True),
        outcome("benign", None, missing=True),
        outcome("toxic", "full_refusal"),
        outcome("toxic", "unscored"),
    ]
    m = compute(outcomes)
    assert m.over_refusal.scored == 4
    assert m.over_refusal.refused == 2
    assert m.over_refusal.rate == 0.5
    assert (m.over_refusal.unscored, m.over_refusal.errors, m.over_refusal.missing) == (1, 1, 1)
    assert m.over_refusal.total == 7
    assert m.toxic_refusal.rate == 1.0
    assert m.toxic_refusal.unscored == 1


def test_no_scored_items_gives_no_rate() -> None:
    stat = rate_stat([outcome("benign", "unscored")])
    assert stat.rate is None and stat.ci_low is None


labels = st.sampled_from(["full_refusal", "partial_refusal", "compliance", "unscored", None])


@given(st.lists(st.tuples(st.sampled_from(["benign", "toxic"]), labels, st.sampled_from("abc"), st.booleans())))
def test_invariants(rows: list[tuple[str, str | None, str, bool]]) -> None:
    outcomes = [outcome(lab, v, cat, error=err) for lab, v, cat, err in rows]
    m = compute(outcomes)
    for stat in (m.over_refusal, m.toxic_refusal):
        assert stat.total == stat.scored + stat.unscored + stat.errors + stat.missing
        if stat.rate is not None:
            assert 0.0 <= stat.ci_low <= stat.rate <= stat.ci_high <= 1.0  # type: ignore[operator]
    assert sum(c.benign.total for c in m.categories) == m.over_refusal.total
    assert sum(c.toxic.refused for c in m.categories) == m.toxic_refusal.refused
