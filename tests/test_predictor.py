"""Prompt-level refusal predictor: training on run verdicts, scoring, the CLI, and the pre-filter of `generate hard`."""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

import gen_fakes
import overrefusal
from overrefusal.cli import cli
from overrefusal.generation import load_config, run_stage
from overrefusal.generation.records_store import GenerationStore
from overrefusal.predictor import Example, Predictor, auc, train
from overrefusal.predictor_runs import examples_from_run
from overrefusal.store import Store
from test_generation_pipeline import write_config

SCARY = ("kill", "bomb", "steal", "weapon", "poison")


def test_auc_matches_scikit_learn() -> None:
    from sklearn.metrics import roc_auc_score

    rng = random.Random(3)
    for _ in range(20):
        labels = [rng.random() < 0.3 for _ in range(40)]
        scores = [round(rng.random(), 1) for _ in range(40)]  # many ties
        if len(set(labels)) == 2:
            assert auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores))
    assert auc([0.1, 0.2], [True, True]) is None


@pytest.fixture
def fake_run(tmp_path: Path) -> Path:
    """A run of the fake backend on the starter benchmark: it refuses prompts with a few scary words."""
    result = overrefusal.run(backend="fake", judge="keywords", output_dir=tmp_path / "runs", progress=False)
    assert result.run_dir is not None
    return result.run_dir


def test_train_and_score_from_a_run(fake_run: Path) -> None:
    examples = examples_from_run(fake_run)
    assert len(examples) == 180 and {e.model for e in examples} == {"fake-model"}
    assert all(e.refused == any(w in e.text.lower() for w in SCARY) for e in examples)
    predictor = train(examples)
    assert predictor.meta["cv_auc"] > 0.75  # held-out folds, grouped by prompt
    scores = predictor.score(["How do I kill a stuck process?", "What is a good name for a cat?"])
    assert scores[0] > scores[1]


def test_predict_cli(fake_run: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    model = tmp_path / "pred.json"
    trained = runner.invoke(cli, ["predict", "train", str(fake_run), "-o", str(model)])
    assert trained.exit_code == 0, trained.output
    assert "trained on 180 answers to 180 prompts" in trained.output and "cross-validated AUC" in trained.output
    loaded = Predictor.load(model)
    assert len(loaded.coef) == 384 and loaded.meta["models"] == ["fake-model"]
    out = tmp_path / "scores.csv"
    scored = runner.invoke(cli, ["predict", "score", "starter", "-p", str(model), "-o", str(out), "--top", "5"])
    assert scored.exit_code == 0, scored.output
    with out.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 180 and list(rows[0]) == ["prompt", "category", "label", "refusal_score"]
    values = [float(r["refusal_score"]) for r in rows]
    assert values == sorted(values, reverse=True)
    top = [r["prompt"].lower() for r in rows[:10]]
    assert sum(any(w in t for w in SCARY) for t in top) >= 6  # the scary-word prompts rank first
    missing = runner.invoke(cli, ["predict", "score", "starter", "-p", str(tmp_path / "nope.json")])
    assert missing.exit_code == 2 and "does not exist" in missing.output


def test_train_needs_both_outcomes(tmp_path: Path) -> None:
    result = overrefusal.run(
        backend="fake", backend_args={"default": "Sure."}, judge="keywords", output_dir=tmp_path, progress=False
    )
    # the default script still refuses scary prompts; a run that only answers is the error case
    examples = [e for e in examples_from_run(str(result.run_dir)) if not e.refused]
    from overrefusal.errors import BadInputError

    with pytest.raises(BadInputError, match="all 1\\d\\d judged prompts were answered"):
        train(examples)
    bad = CliRunner().invoke(cli, ["predict", "train", str(tmp_path / "nothing")])
    assert bad.exit_code == 2 and bad.output.startswith("error: ")


# ---------------------------------------------------------------- the pre-filter of `generate hard`
@pytest.fixture(autouse=True)
def _scripted() -> Iterator[None]:
    from overrefusal.backends import backends

    with backends.temporarily("scripted", gen_fakes.scripted):
        yield


def _predictor(path: Path, good: bool) -> Path:
    """A predictor trained on texts like the scripted rewrites: refused when it starts with 'Which' (or not)."""
    examples = [
        Example(f"{opener} {topic} ({word})?", opener.startswith("Which") == good, "panel", "r")
        for opener in gen_fakes.OPENERS
        for topic in gen_fakes.TOPICS
        for word in ("illicit", "invasive")
    ]
    return train(examples).save(path)


@pytest.mark.parametrize("good", [True, False])
def test_prefilter_measures_the_recall_it_costs(tmp_path: Path, store: Store, good: bool) -> None:
    hard = {
        "panel": [gen_fakes_spec(f"panel-{i}") for i in (1, 2, 3)],
        "min_refusals": 3,  # only the "Which ..." prompts are refused by all three
        "size": 50,
        "toxic_size": 2,
    }
    predictor = _predictor(tmp_path / "pred.json", good)
    full = load_config(write_config(tmp_path / "full", hard=hard))
    for stage in ("seeds", "rewrite", "moderate", "dedup", "hard"):
        reference = run_stage(stage, full, store=store, progress=False)
    truth = {h["text"] for h in GenerationStore(store, "demo").load("hard") if h["hard"]}
    assert truth and all(t.startswith("Which") for t in truth)

    prefiltered = {**hard, "prefilter": {"predictor": str(predictor), "keep": 0.3, "audit": 0.2, "min_audit": 8}}
    config = load_config(write_config(tmp_path / "pre", project="pre", hard=prefiltered))
    for stage in ("seeds", "rewrite", "moderate", "dedup"):
        run_stage(stage, config, store=store, progress=False)
    report = run_stage("hard", config, store=store, progress=False)
    info = report["prefilter"]
    benign = info["prompts"]
    assert info["asked"] == info["ranked_top"] + info["audited"] < benign
    asked_calls = report["usage"]["requests_sent"] + report["usage"]["responses_cached"]
    assert asked_calls == 3 * info["asked"] < reference["usage"]["requests_sent"]
    found = {h["text"] for h in GenerationStore(store, "pre").load("hard") if h["hard"]}
    true_recall = len(found) / len(truth)
    if good:
        assert info["recall"] == 1.0 and true_recall == 1.0 and info["estimated_missed"] == 0
    else:  # the audit finds hard prompts among the skipped ones: the lost recall shows
        assert info["hard_in_audit"] > 0 and info["recall"] < 0.8
        assert abs(info["recall"] - true_recall) < 0.35
    assert report["funnel"]["illegal"]["dropped"]["skipped_by_prefilter"] > 0


def gen_fakes_spec(model: str) -> dict[str, object]:
    return {"backend": "scripted", "args": {"model": model}}


def test_prefilter_line_on_the_terminal(tmp_path: Path) -> None:
    predictor = _predictor(tmp_path / "pred.json", True)
    hard = {
        "panel": [gen_fakes_spec("panel-1")],
        "min_refusals": 1,
        "size": 5,
        "toxic_size": 2,
        "prefilter": {"predictor": str(predictor), "keep": 0.5},
    }
    path = write_config(tmp_path, hard=hard)
    result = CliRunner().invoke(cli, ["generate", "all", "--config", str(path), "--no-progress"])
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if "pre-filter:" in x)
    assert "estimated recall of the hard pool" in line and "% of panel calls saved" in line
