from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from overrefusal.cli import cli
from overrefusal.errors import BadInputError
from overrefusal.judges.agreement import agreement
from overrefusal.judges.gold import load_gold

# keywords judge on these: full, compliance, full (gold partial), compliance (gold partial),
# full (gold compliance), unscored (empty), compliance
GOLD = (
    "id,prompt,completion,final_label\n"
    "v2-1,p1,\"I'm sorry, I can't.\",2_full_refusal\n"
    'v2-2,p2,"Sure, here\'s how.",1_full_compliance\n'
    "v2-3,p3,I cannot do that.,3_partial_refusal\n"
    "v2-4,p4,Here is the answer. But I won't give more.,3_partial_refusal\n"
    'v2-5,p5,"I apologize, but no.",1_full_compliance\n'
    "v2-6,p6,,1_full_compliance\n"
    "v2-7,p7,The capital is Paris.,1_full_compliance\n"
)


@pytest.fixture
def gold_file(tmp_path: Path) -> Path:
    path = tmp_path / "gold.csv"
    path.write_text(GOLD, encoding="utf-8")
    return path


def test_eval_exact_metrics(gold_file: Path) -> None:
    result = CliRunner().invoke(
        cli, ["judge", "eval", str(gold_file), "--judge", "keywords", "--json", "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)[0]
    # scored 6 of 7; 3-class right: 1, 2, 7; binary right: 1, 2, 3, 7
    assert out["n"] == 7 and out["scored"] == 6
    assert out["unscored_rate"] == pytest.approx(1 / 7)
    assert out["three_class_accuracy"] == pytest.approx(3 / 6)
    assert out["binary_accuracy"] == pytest.approx(4 / 6)
    # p_o = 4/6, gold refusal rate 3/6, judge refusal rate 3/6 -> p_e = 1/2, kappa = 1/3
    assert out["kappa"] == pytest.approx(1 / 3)
    assert out["partial_recall"] == 0.0
    assert out["confusion"]["partial_refusal"] == {
        "compliance": 1,
        "full_refusal": 1,
        "partial_refusal": 0,
        "unscored": 0,
    }
    assert out["confusion"]["compliance"]["unscored"] == 1
    assert out["classes"]["full_refusal"]["precision"] == pytest.approx(1 / 3)
    assert out["classes"]["full_refusal"]["recall"] == 1.0


def test_eval_table(gold_file: Path) -> None:
    result = CliRunner().invoke(cli, ["judge", "eval", str(gold_file), "-j", "keywords", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "binary accuracy 66.7%" in result.output and "kappa 0.333" in result.output
    assert "confusion" in result.output and "precision" in result.output


def test_unscored_never_counted() -> None:
    a = agreement(["full_refusal", "compliance", "compliance"], ["unscored", "unscored", "compliance"])
    assert a.scored == 1 and a.binary_accuracy == 1.0 and a.three_class_accuracy == 1.0
    assert a.unscored_rate == pytest.approx(2 / 3)
    assert a.binary_accuracy_all == pytest.approx(1 / 3)  # abstaining does not pay
    assert agreement(["compliance"], ["unscored"]).binary_accuracy is None
    assert agreement(["compliance"], ["unscored"]).binary_accuracy_all == 0.0


def test_other_layout_with_columns_and_label_map(tmp_path: Path) -> None:
    path = tmp_path / "other.jsonl"
    rows = [
        {"q": "a", "a": "I won't do that.", "human": "REFUSED"},
        {"q": "b", "a": "Here you go: 42.", "human": "ok"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    args = ["judge", "eval", str(path), "-j", "keywords", "--json", "--no-progress"]
    args += ["--prompt-column", "q", "--response-column", "a", "--label-column", "human"]
    args += ["--label-map", "REFUSED=full_refusal", "--label-map", "ok=compliance"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["binary_accuracy"] == 1.0


@pytest.mark.parametrize(
    ("content", "extra", "message"),
    [
        ("prompt,completion,final_label\np,r,weird\n", [], "unknown label 'weird'"),
        ("prompt,text,final_label\np,r,2_full_refusal\n", [], "no response column"),
        ("prompt,completion,final_label\np,r,2_full_refusal\n", ["--label-column", "nope"], "no column 'nope'"),
        ("", [], "is empty"),
        ("prompt,completion,final_label\np,r,x\n", ["--label-map", "x=maybe"], "label mapping"),
        ("prompt,completion,final_label\np,r,x\n", ["--label-map", "novalue"], "LABEL=CLASS"),
    ],
)
def test_bad_files_exit_2(tmp_path: Path, content: str, extra: list[str], message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content, encoding="utf-8")
    result = CliRunner().invoke(cli, ["judge", "eval", str(path), "-j", "keywords", "--no-progress", *extra])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_missing_file_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["judge", "eval", str(tmp_path / "nope.csv")])
    assert result.exit_code == 2 and "does not exist" in result.output


def test_load_gold_xstest_layout(xstest_dir: Path) -> None:
    gold = load_gold(xstest_dir / "completions" / "xstest_v2_completions_gpt4.csv")
    assert len(gold) == 450
    assert gold.labels.count("partial_refusal") == 9 and gold.labels.count("full_refusal") == 211
    with pytest.raises(BadInputError):
        load_gold(xstest_dir / "xstest_prompts.csv")
