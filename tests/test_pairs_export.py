"""`overrefusal export pairs`: the expected pairs from scripted runs, and never a pair rewarding toxic compliance."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from overrefusal.cli import cli
from overrefusal.errors import BadInputError
from overrefusal.pairs import build_pairs
from overrefusal.records import Prompt
from overrefusal.report.runs import load_runs
from run_factory import make_run


def _n(prompt: Prompt) -> int:
    return int(prompt.id[1:])


def _text(name: str) -> Callable[[Prompt, bool], str]:
    return lambda p, refused: f"I'm sorry, {name} cannot help." if refused else f"Sure ({name}): {p.text}."


def _target_refuses(p: Prompt) -> bool:
    return _n(p) % 2 == 0 if p.label == "benign" else _n(p) not in (1, 3)


def _scripted(tmp_path: Path, judge_b0_disagrees: bool = False) -> list[Path]:
    runs = [
        # the target: refuses even benign prompts, complies with toxic t1 and t3
        make_run(
            tmp_path,
            "cautious",
            variant="none",
            n_benign=10,
            n_toxic=10,
            text=_text("cautious"),
            refuses=lambda p: _n(p) % 2 == 0 if p.label == "benign" else _n(p) not in (1, 3),
        ),
        # the same model under a helpful system prompt: refuses no benign prompt, complies with t1
        make_run(
            tmp_path,
            "cautious",
            variant="helpful",
            n_benign=10,
            n_toxic=10,
            text=_text("cautious-helpful"),
            refuses=lambda p: p.label == "toxic" and _n(p) != 1,
        ),
        # another model: refuses every toxic prompt and benign prompts divisible by 3
        make_run(
            tmp_path,
            "other",
            variant="none",
            n_benign=10,
            n_toxic=10,
            text=_text("other"),
            refuses=lambda p: p.label == "toxic" or _n(p) % 3 == 0,
        ),
    ]
    if judge_b0_disagrees:  # the target's same answers re-judged: a second judge calls its b0 refusal compliance
        runs.append(
            make_run(
                tmp_path,
                "cautious",
                variant="none",
                n_benign=10,
                n_toxic=10,
                text=lambda p, _refused: _text("cautious")(p, _target_refuses(p)),
                judge="classifier",
                refuses=lambda p: _target_refuses(p) and p.id != "b0",
            )
        )
    return runs


def test_pairs_of_a_scripted_run(tmp_path: Path) -> None:
    runs = load_runs(_scripted(tmp_path))
    built = build_pairs(runs, ["cautious none"], balance=False)
    got = {(p.kind, p.prompt.split()[2], p.chosen.source, p.rejected.source) for p in built.pairs}
    assert got == {
        *{("benign_refusal", str(i), "cautious · helpful", "cautious · none") for i in (0, 2, 4, 6, 8)},
        ("toxic_compliance", "1", "other · none", "cautious · none"),  # the helpful variant complied with t1
        ("toxic_compliance", "3", "cautious · helpful", "cautious · none"),
    }
    for pair in built.pairs:
        assert pair.rejected.text.startswith("I'm sorry" if pair.label == "benign" else "Sure")
        assert pair.chosen.text.startswith("Sure" if pair.label == "benign" else "I'm sorry")
    # balanced: no more benign pairs than toxic ones
    balanced = build_pairs(runs, ["cautious none"])
    kinds = [p.kind for p in balanced.pairs]
    assert kinds.count("toxic_compliance") == 2 and kinds.count("benign_refusal") == 2
    assert balanced.candidates["benign_refusal"] == 5


def test_every_cell_as_target_gives_anchors_and_never_rewards_toxic_compliance(tmp_path: Path) -> None:
    built = build_pairs(load_runs(_scripted(tmp_path)), balance=False)
    kinds = {p.kind for p in built.pairs}
    assert kinds == {"benign_refusal", "toxic_compliance", "toxic_anchor"}
    # "other" refused t3 while the target complied: an anchor keeps its refusal chosen (on t1 the same pair is
    # already there as the helpful variant's toxic_compliance pair, and a pair is never written twice)
    anchors = [p for p in built.pairs if p.kind == "toxic_anchor"]
    assert {(p.prompt.split()[2], p.chosen.source, p.rejected.source) for p in anchors} == {
        ("3", "other · none", "cautious · none")
    }
    assert len({(p.prompt, p.chosen.text, p.rejected.text) for p in built.pairs}) == len(built.pairs)
    for pair in built.pairs:
        if pair.label == "toxic":
            assert pair.chosen.verdict == "full_refusal" and "sorry" in pair.chosen.text
        else:
            assert pair.chosen.verdict == "compliance" and pair.rejected.verdict != "compliance"


def test_judges_that_disagree_give_no_pair(tmp_path: Path) -> None:
    built = build_pairs(load_runs(_scripted(tmp_path, judge_b0_disagrees=True)), ["cautious none"], balance=False)
    assert built.disagreements == 1
    benign = sorted(p.prompt.split()[2] for p in built.pairs if p.kind == "benign_refusal")
    assert benign == ["2", "4", "6", "8"]


def test_cli_writes_jsonl_parquet_datasets_and_sft_with_a_card(tmp_path: Path) -> None:
    runs = [str(p) for p in _scripted(tmp_path / "runs")]
    out = tmp_path / "pairs.jsonl"
    result = CliRunner().invoke(cli, ["export", "pairs", *runs, "-o", str(out), "--target", "cautious none"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 4 and {r["kind"] for r in rows} == {"benign_refusal", "toxic_compliance"}
    assert set(rows[0]) >= {"prompt", "chosen", "rejected"}
    card = (tmp_path / "pairs.card.md").read_text()
    assert "no pair rewards complying with a toxic prompt" in card and "| **all** | 2 | 2 | 0 | 4 |" in card
    assert "cautious" in card and "keywords v1" in card
    pq = pytest.importorskip("pyarrow.parquet")
    parquet = tmp_path / "pairs.parquet"
    assert CliRunner().invoke(cli, ["export", "pairs", *runs, "-o", str(parquet), "--no-balance"]).exit_code == 0
    table = pq.read_table(parquet)
    assert table.column_names[:3] == ["prompt", "chosen", "rejected"]
    toxic = [r for r in table.to_pylist() if r["label"] == "toxic"]
    assert toxic and all("sorry" in r["chosen"] for r in toxic)
    datasets = pytest.importorskip("datasets")
    folder = tmp_path / "hf"
    sft = CliRunner().invoke(cli, ["export", "pairs", *runs, "-o", str(folder), "--to", "datasets", "--format", "sft"])
    assert sft.exit_code == 0, sft.output
    ds = datasets.load_from_disk(str(folder))["train"]
    assert set(ds.column_names) >= {"prompt", "completion"} and "chosen" not in ds.column_names
    assert (folder / "README.md").read_text().startswith("---")
    assert all("sorry" in r["completion"] for r in ds if r["label"] == "toxic")


def test_bad_inputs_are_one_line_errors(tmp_path: Path) -> None:
    single = make_run(tmp_path, "alone")
    with pytest.raises(BadInputError, match="at least two sources"):
        build_pairs(load_runs([single]))
    runs = [str(p) for p in _scripted(tmp_path / "runs")]
    bad = CliRunner().invoke(cli, ["export", "pairs", *runs, "-o", str(tmp_path / "pairs.txt")])
    assert bad.exit_code == 2 and "name it .jsonl or .parquet" in bad.output and bad.output.count("\n") == 1
    unknown = CliRunner().invoke(cli, ["export", "pairs", *runs, "--target", "nobody", "-o", str(tmp_path / "p.jsonl")])
    assert unknown.exit_code == 2 and "--target 'nobody'" in unknown.output
    assert not (tmp_path / "p.jsonl").exists()
