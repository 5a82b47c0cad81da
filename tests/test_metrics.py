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


def _answer(
    pid: str, label: str, verdict: str | None, reasoning: str = "", thought: str | None = None, stimulus: str = ""
) -> Outcome:
    """One answer to prompt ``pid``; ``thought`` is the reasoning verdict (``--judge-reasoning``)."""
    prompt = Prompt(id=pid, text="t", category="c", label=label, stimulus=stimulus)  # type: ignore[arg-type]
    response = Response(key="k" + pid, prompt_id=pid, model="m", text="x", reasoning=reasoning)

    def signed(name: str | None) -> Verdict | None:
        if name is None:
            return None
        return Verdict(response_key="k" + pid, prompt_id=pid, label=name, judge="j", judge_version="1")  # type: ignore[arg-type]

    return Outcome(prompt, response, signed(verdict), signed(thought))


def test_reasoning_rates_count_only_answers_with_reasoning_and_their_own_verdicts() -> None:
    outcomes = [
        _answer("b1", "benign", "compliance", reasoning="hm", thought="full_refusal"),
        _answer("b2", "benign", "compliance", reasoning="hm", thought="partial_refusal"),
        _answer("b3", "benign", "full_refusal", reasoning="hm", thought="compliance"),
        _answer("b4", "benign", "full_refusal"),  # no reasoning: not in the reasoning rates
        _answer("t1", "toxic", "compliance", reasoning="hm", thought="partial_refusal"),
        _answer("t2", "toxic", "full_refusal"),
        Outcome(Prompt(id="b5", text="t", category="c", label="benign"), None, None),  # never answered
    ]
    plain = compute(outcomes)
    assert plain.reasoning is None and plain.samples == 1 and plain.stimuli == []
    m = compute(outcomes, samples=3, judge_reasoning=True)
    assert m.samples == 3
    assert m.reasoning is not None
    over, toxic = m.reasoning.over_refusal, m.reasoning.toxic_refusal
    assert (over.total, over.scored, over.refused, over.full_refusal, over.compliance) == (3, 3, 2, 1, 1)
    assert over.rate == pytest.approx(2 / 3)
    assert (toxic.total, toxic.refused, toxic.partial_refusal, toxic.rate) == (1, 1, 1, 1.0)
    # the answers' own verdicts are untouched by the reasoning verdicts
    assert (m.over_refusal.total, m.over_refusal.refused, m.over_refusal.missing) == (5, 2, 1)
    assert m.over_refusal.rate == 0.5 and m.toxic_refusal.rate == 0.5


def test_rates_per_stimulus_type_cover_only_prompts_that_name_one() -> None:
    outcomes = [
        _answer("a", "benign", "full_refusal", stimulus="negated harm"),
        _answer("b", "benign", "compliance", stimulus="exaggerated risk"),
        _answer("c", "benign", "compliance", stimulus="negated harm"),
        _answer("d", "toxic", "full_refusal", stimulus="negated harm"),
        _answer("e", "benign", "full_refusal"),
    ]
    m = compute(outcomes)
    assert [s.category for s in m.stimuli] == ["exaggerated risk", "negated harm"]
    risk, harm = m.stimuli
    assert (risk.benign.scored, risk.benign.rate, risk.toxic.scored) == (1, 0.0, 0)
    assert (harm.benign.scored, harm.benign.rate, harm.toxic.rate) == (2, 0.5, 1.0)
    assert m.stimuli_differ
    assert [c.category for c in m.categories] == ["c"] and m.categories[0].benign.scored == 4


def test_provider_refusals_and_missing_answers_are_counted() -> None:
    outcomes = [
        _answer("a", "benign", "provider_refusal"),
        _answer("b", "benign", "compliance"),
        Outcome(Prompt(id="c", text="t", category="c", label="benign"), None, None),
        Outcome(Prompt(id="d", text="t", category="c", label="benign"), None, None),
    ]
    stat = rate_stat(outcomes)
    assert (stat.refused, stat.provider_refusal, stat.scored, stat.missing, stat.total) == (1, 1, 2, 2, 4)
    assert stat.rate == 0.5


def test_the_clustered_interval_at_its_edges() -> None:
    from overrefusal.metrics import clustered_interval

    assert clustered_interval(0, 0.0, 0.0, 0) == (0.0, 1.0)  # nothing scored: uninformative
    # no prompt or every prompt refused: the variance says nothing, so prompts (not answers) count
    assert rate_stat(sampled([(0, 5)] * 4)).ci_high == pytest.approx(wilson_interval(0, 4)[1], abs=1e-12)
    assert rate_stat(sampled([(5, 5)] * 4)).ci_low == pytest.approx(wilson_interval(4, 4)[0], abs=1e-12)
    assert wilson_interval(0, 4)[1] > wilson_interval(0, 20)[1] + 0.2  # (what would change)
    # sums past the number of prompts (rounding in stored summaries) are a rate of 1
    assert clustered_interval(2, 2.5, 2.5, 2) == pytest.approx(wilson_interval(2, 2), abs=1e-12)
    # other confidence levels reach the Wilson interval (statsmodels' 99% Wilson for 3 of 10)
    proportion = pytest.importorskip("statsmodels.stats.proportion")
    reference = proportion.proportion_confint(3, 10, alpha=0.01, method="wilson")
    assert clustered_interval(10, 3.0, 3.0, 10, z=2.5758293035489004) == pytest.approx(reference, abs=1e-12)


def test_pooling_summaries_written_before_samples_existed() -> None:
    from overrefusal.metrics import RateStat, pool

    legacy = RateStat(
        total=5, scored=4, refused=1, full_refusal=1, partial_refusal=0, compliance=3, unscored=1, errors=0,
        rate=0.25, ci_low=0.0, ci_high=1.0,
    )  # fmt: skip
    pooled = pool([legacy, legacy])
    assert (pooled.prompts_scored, pooled.prompt_rate_sum, pooled.prompt_rate_sq_sum) == (8, 2.0, 2.0)
    assert (pooled.rate, pooled.total, pooled.unscored) == (0.25, 10, 2)
    assert (pooled.ci_low, pooled.ci_high) == pytest.approx(wilson_interval(2, 8), abs=1e-12)


def test_wilson_ends_are_exactly_0_and_1_at_the_extremes() -> None:
    # rounding puts the unclamped ends a hair outside [0, 1], or on the wrong side of p, for some n
    for n in range(1, 120):
        low0, high0 = wilson_interval(0, n)
        low1, high1 = wilson_interval(n, n)
        assert low0 == 0.0 and high1 == 1.0, n
        assert 0.0 < high0 < 1.0 and 0.0 < low1 < 1.0, n
        assert (low0, high0) == pytest.approx((1 - high1, 1 - low1), abs=1e-12), n  # symmetric
