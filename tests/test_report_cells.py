"""The report groups runs by (model, variant, judge), names cells loosely, words paired tests, overlays OR-Bench."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from overrefusal.cli import cli
from overrefusal.errors import BadInputError
from overrefusal.records import Prompt
from overrefusal.report.compare import compare, render_comparison
from overrefusal.report.figures import figures
from overrefusal.report.reference import ORBENCH_2024, load_reference
from overrefusal.report.runs import load_runs
from run_factory import make_run

pytest.importorskip("plotly")


def _every_third(prompt: Prompt) -> bool:
    return prompt.label == "toxic" or int(prompt.id[1:]) % 3 == 0


def _sweep(tmp_path: Path) -> list[Path]:
    """Two models x two system-prompt variants, plus a re-judged copy of one cell."""
    return [
        make_run(tmp_path, "qwen2.5-coder-0.5b-instruct", variant="none", p_benign=0.5, p_toxic=0.7),
        make_run(tmp_path, "qwen2.5-coder-0.5b-instruct", variant="helpful", p_benign=0.1, p_toxic=0.6),
        make_run(tmp_path, "smollm2-135m-instruct", variant="none", p_benign=0.3, p_toxic=0.3),
        make_run(tmp_path, "smollm2-135m-instruct", variant="helpful", p_benign=0.3, p_toxic=0.3),
        make_run(tmp_path, "smollm2-135m-instruct", variant="helpful", judge="classifier", refuses=_every_third),
    ]


def test_cells_are_model_variant_judge_and_a_second_judge_is_not_an_error(tmp_path: Path) -> None:
    comp = compare(load_runs(_sweep(tmp_path)))
    labels = [c.label for c in comp.models]
    assert labels == [
        "qwen2.5-coder-0.5b-instruct · none · keywords",
        "qwen2.5-coder-0.5b-instruct · helpful · keywords",
        "smollm2-135m-instruct · none · keywords",
        "smollm2-135m-instruct · helpful · keywords",
        "smollm2-135m-instruct · helpful · classifier",
    ]
    assert any("judged differently" in n for n in comp.notes)  # the page warns
    cross = [t for t in comp.mcnemar if "classifier" in t.b_model and "keywords" in t.a]
    assert cross and all(t.caveats and "judged differently" in t.caveats[0] for t in cross)
    assert all("Caution: judged differently" in t.sentence for t in cross)
    same = [t for t in comp.mcnemar if "classifier" not in t.a + t.b_model]
    assert same and not any(t.caveats for t in same)
    # Holm over all 10 pairs x 2 labels: adjusted p never below the raw p, and monotone in it
    assert len(comp.mcnemar) == 20 and all(t.p_holm >= t.p_value for t in comp.mcnemar)
    ordered = sorted(comp.mcnemar, key=lambda t: t.p_value)
    assert [t.p_holm for t in ordered] == sorted(t.p_holm for t in ordered)


def test_one_model_without_variants_or_second_judge_keeps_its_plain_name(tmp_path: Path) -> None:
    comp = compare(load_runs([make_run(tmp_path, "alpha"), make_run(tmp_path, "beta")]))
    assert [c.label for c in comp.models] == ["alpha", "beta"]


def test_pair_takes_models_and_parts_of_names(tmp_path: Path) -> None:
    runs = load_runs(_sweep(tmp_path)[:4])
    comp = compare(runs, pair=("qwen · helpful", "smollm2-135m-instruct · none"))
    assert {(t.a, t.b_model) for t in comp.mcnemar} == {
        ("qwen2.5-coder-0.5b-instruct · helpful", "smollm2-135m-instruct · none")
    }
    plain = compare(
        load_runs([make_run(tmp_path / "p", "Qwen/Qwen2.5-7B-Instruct"), make_run(tmp_path / "p", "gpt-x")])
    )
    assert plain.models[0].label == "Qwen/Qwen2.5-7B-Instruct"
    short = compare(load_runs([plain.models[0].runs[0].path, plain.models[1].runs[0].path]), pair=("qwen", "gpt"))
    assert short.mcnemar[0].a == "Qwen/Qwen2.5-7B-Instruct"
    with pytest.raises(BadInputError, match="matches several cells"):
        compare(runs, pair=("qwen", "smollm2"))  # qwen has two variants
    with pytest.raises(BadInputError, match="names one cell twice"):
        compare(runs, pair=("qwen · none", "qwen2.5-coder-0.5b-instruct · none"))


def test_sentences_say_who_over_refuses_more(tmp_path: Path) -> None:
    cautious = make_run(
        tmp_path, "cautious", n_benign=200, refuses=lambda p: p.label == "toxic" or int(p.id[1:]) % 2 == 0
    )
    helpful = make_run(
        tmp_path, "helpful", n_benign=200, refuses=lambda p: p.label == "toxic" or int(p.id[1:]) % 10 == 0
    )
    comp = compare(load_runs([helpful, cautious]), resamples=2000)
    benign = next(t for t in comp.mcnemar if t.label == "benign")
    # helpful refuses ids divisible by 10 (all also even): 80 prompts refused by cautious only
    assert (benign.b, benign.c, benign.n) == (0, 80, 200)
    assert benign.difference.diff == pytest.approx(-0.4)
    assert benign.difference.ci_low is not None and benign.difference.ci_high is not None
    assert -0.5 < benign.difference.ci_low < -0.4 < benign.difference.ci_high < -0.3
    assert benign.significant
    assert benign.sentence.startswith("cautious over-refuses more than helpful: +40.0 points (95% CI +")
    toxic = next(t for t in comp.mcnemar if t.label == "toxic")
    assert toxic.sentence.startswith("No clear difference: helpful vs cautious in toxic refusal, +0.0 points")
    assert comp.sentences[0] == benign.sentence
    page = render_comparison(comp)
    assert "cautious over-refuses more than helpful" in page
    out = CliRunner().invoke(cli, ["report", str(helpful), str(cautious), "-o", str(tmp_path / "r.html")])
    assert out.exit_code == 0 and "cautious over-refuses more than helpful: +40.0 points" in out.output


def test_orbench_reference_points_are_a_trace_of_their_own(tmp_path: Path) -> None:
    ref = load_reference("orbench-2024")
    assert len(ref.points) == 32 and len({p.model for p in ref.points}) == 32
    by_model = {p.model: p for p in ref.points}
    # spot checks against the paper's Table 2 (Hard-1K) and 100 - Table 6 (Toxic acceptance)
    assert (by_model["Claude-3-opus"].over_refusal, by_model["Claude-3-opus"].toxic_refusal) == (0.91, 0.981)
    assert (by_model["GPT-3.5-turbo-0125"].over_refusal, by_model["GPT-3.5-turbo-0125"].toxic_refusal) == (
        0.127,
        0.621,
    )
    assert by_model["Llama-3.1-70B"].over_refusal == pytest.approx(0.03)
    assert sum(p.judge_model for p in ref.points) == 3
    with pytest.raises(BadInputError, match="unknown reference"):
        load_reference("orbench-2023")
    comp = compare(load_runs(_sweep(tmp_path)[:4]), reference="orbench-2024")
    figs = figures(comp)
    cells, ideal, published = figs["scatter"]["data"]
    assert len(cells["x"]) == 4 and len(published["x"]) == 32 and ideal["x"] == [0]
    assert published["y"][0] == ORBENCH_2024.points[0].toxic_refusal
    assert any("arXiv 2405.20947" in n for n in comp.notes)
    assert "Table 2" in render_comparison(comp)
    without = figures(compare(load_runs(_sweep(tmp_path / "w")[:4])))
    assert len(without["scatter"]["data"]) == 2
