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


# clustered answers (--samples) ---------------------------------------------------------------
def sampled(per_prompt: list[tuple[int, int]], label: str = "benign") -> list[Outcome]:
    """Outcomes for prompts with (refused, answered) samples each."""
    out: list[Outcome] = []
    for index, (refused, answered) in enumerate(per_prompt):
        prompt = Prompt(id=f"p{index}", text="t", category="c", label=label)  # type: ignore[arg-type]
        for sample in range(answered):
            response = Response(key=f"k{index}-{sample}", prompt_id=prompt.id, model="m", text="x", sample=sample)
            verdict = "full_refusal" if sample < refused else "compliance"
            out.append(Outcome(prompt, response, Verdict(response_key=response.key, prompt_id=prompt.id,
                                                         label=verdict, judge="j", judge_version="1")))  # fmt: skip
    return out


def test_one_sample_per_prompt_is_scipys_wilson() -> None:
    stats = pytest.importorskip("scipy.stats")
    for refused, n in ((0, 7), (3, 10), (17, 40), (40, 40), (1, 1)):
        stat = rate_stat(sampled([(1, 1)] * refused + [(0, 1)] * (n - refused)))
        reference = stats.binomtest(refused, n).proportion_ci(confidence_level=0.95, method="wilson")
        assert (stat.ci_low, stat.ci_high) == pytest.approx((reference.low, reference.high), abs=1e-9)
        assert stat.rate == pytest.approx(refused / n)


def test_clustered_interval_matches_a_cluster_bootstrap() -> None:
    np = pytest.importorskip("numpy")
    rng = np.random.default_rng(7)
    rates = rng.beta(0.6, 1.4, size=300)
    refused = rng.binomial(5, rates)
    stat = rate_stat(sampled([(int(r), 5) for r in refused]))
    fractions = refused / 5
    boot = np.array([rng.choice(fractions, size=fractions.size).mean() for _ in range(4000)])
    low, high = np.quantile(boot, [0.025, 0.975])
    assert stat.rate == pytest.approx(fractions.mean())
    assert stat.ci_low == pytest.approx(low, abs=0.01) and stat.ci_high == pytest.approx(high, abs=0.01)
    # treating the 1500 answers as independent would give a much narrower interval
    naive = wilson_interval(int(refused.sum()), 1500)
    assert (naive[1] - naive[0]) < 0.75 * (stat.ci_high - stat.ci_low)  # type: ignore[operator]


def test_clustered_interval_covers_the_mean_rate() -> None:
    np = pytest.importorskip("numpy")
    rng = np.random.default_rng(11)
    a, b, prompts, samples, trials = 0.5, 1.5, 60, 5, 400
    truth = a / (a + b)
    covered = naive_covered = 0
    for _ in range(trials):
        refused = rng.binomial(samples, rng.beta(a, b, size=prompts))
        stat = rate_stat(sampled([(int(r), samples) for r in refused]))
        covered += stat.ci_low <= truth <= stat.ci_high  # type: ignore[operator]
        low, high = wilson_interval(int(refused.sum()), prompts * samples)
        naive_covered += low <= truth <= high
    assert 0.92 <= covered / trials <= 0.98
    assert naive_covered / trials < 0.85  # why the clustering matters


def test_pooling_keeps_the_per_prompt_rate() -> None:
    from overrefusal.metrics import pool

    a = sampled([(3, 3), (0, 3), (1, 3)])
    b = sampled([(2, 2), (1, 4)])
    b = [Outcome(o.prompt.model_copy(update={"id": "b" + o.prompt.id}), o.response, o.verdict) for o in b]
    pooled, whole = pool([rate_stat(a), rate_stat(b)]).model_dump(), rate_stat(a + b).model_dump()
    assert pooled == pytest.approx(whole, abs=1e-12)
    assert rate_stat(a + b).rate == pytest.approx((1 + 0 + 1 / 3 + 1 + 0.25) / 5)
