from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from overrefusal.cli import cli
from overrefusal.errors import BadInputError
from overrefusal.metrics import rate_stat
from overrefusal.report.compare import compare, is_hard, pool, render_comparison, write_report
from overrefusal.report.runs import iter_responses, iter_verdicts, load_run, load_runs, read_row_at
from run_factory import XSS_IMG, XSS_SCRIPT, make_run

pytest.importorskip("plotly")
pytest.importorskip("scipy")


def _runs(tmp_path: Path) -> list[Path]:
    return [
        make_run(tmp_path, "alpha", p_benign=0.1, p_toxic=0.6),
        make_run(tmp_path, "beta", p_benign=0.5, p_toxic=0.9, errors=3),
        make_run(tmp_path, "gamma", p_benign=0.3, p_toxic=0.8),
        make_run(tmp_path, "alpha", "or-bench-hard-1k", p_benign=0.6),
    ]


def test_load_run_rejects_non_runs(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="not a folder"):
        load_run(tmp_path / "nope")
    with pytest.raises(BadInputError, match="not a run folder"):
        load_run(tmp_path)
    run = make_run(tmp_path, "alpha")
    (run / "summary.json").write_text(json.dumps({"format_version": 99}))
    with pytest.raises(BadInputError, match="format_version 99"):
        load_run(run)
    (run / "summary.json").write_text("{not json")
    with pytest.raises(BadInputError, match="cannot read"):
        load_run(run)


def test_streaming_round_trips_the_run_folder(tmp_path: Path) -> None:
    run = load_run(make_run(tmp_path, "alpha", errors=2))
    rows = list(iter_responses(run))
    assert len(rows) == 60 and sum(1 for r in rows if r.response and r.response.error) == 2
    assert read_row_at(run, rows[17].offset) == rows[17]
    assert len(list(iter_verdicts(run))) == 58


def test_same_folder_twice_is_an_error_but_a_rerun_replaces_the_older_run(tmp_path: Path) -> None:
    run = make_run(tmp_path, "alpha")
    with pytest.raises(BadInputError, match="given twice"):
        load_runs([run, run])
    other = make_run(tmp_path / "other", "alpha", p_benign=0.9, created="2026-11-24T00:00:00+00:00")
    comp = compare(load_runs([other, run]))
    assert len(comp.models) == 1 and [r.path for r in comp.models[0].runs] == [other.resolve()]
    assert any("two runs of alpha on starter" in n and "newer" in n for n in comp.notes)


def test_pool_matches_rate_stat_of_the_union() -> None:
    from overrefusal.metrics import Outcome
    from overrefusal.records import Prompt, Response, Verdict

    def outcomes(n: int, refused: int, offset: int) -> list[Outcome]:
        out = []
        for i in range(n):
            p = Prompt(id=f"p{offset + i}", text="t", category="hate", label="benign")
            r = Response(key=f"k{offset + i}", prompt_id=p.id, model="m", text="x")
            label = "full_refusal" if i < refused else "compliance"
            out.append(
                Outcome(p, r, Verdict(response_key=r.key, prompt_id=p.id, label=label, judge="j", judge_version="1"))
            )
        return out

    a, b = outcomes(30, 7, 0), outcomes(50, 20, 100)
    assert pool([rate_stat(a), rate_stat(b)]) == rate_stat(a + b)


def test_comparison_groups_models_and_tests_pairs(tmp_path: Path) -> None:
    comp = compare(load_runs(_runs(tmp_path)))
    assert [m.model for m in comp.models] == ["alpha", "beta", "gamma"]
    assert comp.benchmarks == ["starter", "or-bench-hard-1k"] and is_hard("or-bench-hard-1k")
    alpha = comp.models[0]
    # the pooled rate leaves the hard set out (its prompts repeat those of a full set)
    assert alpha.over_refusal is not None and alpha.over_refusal.scored == 40
    assert alpha.over_refusal == alpha.benign_by_benchmark["starter"]
    assert alpha.benign_by_benchmark["or-bench-hard-1k"].scored == 40
    # alpha has a hard run the others lack: the page says so
    assert len(comp.notes) == 1 and "not run on the same benchmarks" in comp.notes[0]
    assert "not run on the same benchmarks" in render_comparison(comp)
    same = compare(load_runs(_runs(tmp_path / "same")[:3]))
    assert same.notes == []
    assert comp.models[1].errors == 3
    # 3 pairs x (benign, toxic)
    assert len(comp.mcnemar) == 6
    test = next(t for t in comp.mcnemar if t.a == "alpha" and t.b_model == "beta" and t.label == "benign")
    assert test.n == 40 - 3 and test.both + test.neither + test.b + test.c == test.n
    # exact two-sided binomial p-value computed by hand
    k, n = min(test.b, test.c), test.b + test.c
    expected = min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n)
    assert test.p_value == pytest.approx(expected)
    assert test.statistic == pytest.approx((abs(test.b - test.c) - 1) ** 2 / n)
    assert comp.spearman.n == 3 and comp.spearman.rho is not None
    assert comp.examples and all(e.refused_by in ("alpha", "beta") for e in comp.examples)


def test_pair_and_x_benchmark_options(tmp_path: Path) -> None:
    runs = load_runs(_runs(tmp_path))
    comp = compare(runs, pair=("gamma", "alpha"), x_benchmark="starter")
    assert {(t.a, t.b_model) for t in comp.mcnemar} == {("gamma", "alpha")}
    with pytest.raises(BadInputError, match="not among the runs' cells"):
        compare(runs, pair=("alpha", "zeta"))
    with pytest.raises(BadInputError, match="--x-benchmark"):
        compare(runs, x_benchmark="nope")


def test_spearman_of_perfectly_ranked_models(tmp_path: Path) -> None:
    runs = [
        make_run(tmp_path, f"m{i}", n_benign=200, n_toxic=200, p_benign=0.1 + 0.2 * i, p_toxic=0.1 + 0.2 * i)
        for i in range(4)
    ]
    comp = compare(load_runs(runs))
    assert comp.spearman.rho == pytest.approx(1.0)


def test_page_escapes_model_and_response_text(tmp_path: Path) -> None:
    payload = XSS_SCRIPT + XSS_IMG
    runs = [
        make_run(tmp_path, "safe", p_benign=0.0),
        make_run(tmp_path, f"evil{XSS_IMG}", p_benign=1.0, text=lambda p, r: payload),
    ]
    page = render_comparison(compare(load_runs(runs)))
    assert "window.__pwned" in page  # the text is there ...
    assert XSS_SCRIPT not in page and XSS_IMG not in page  # ... but never as markup
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in page
    from plotly.offline import get_plotlyjs

    bundle = get_plotlyjs()
    assert bundle in page  # inline, no CDN
    assert "http:" not in page.replace(bundle, "") and "https:" not in page.replace(bundle, "")


def test_cli_report_writes_page_and_rejects_bad_folders(tmp_path: Path) -> None:
    runs = [str(p) for p in _runs(tmp_path)]
    out = tmp_path / "out" / "cmp.html"
    result = CliRunner().invoke(cli, ["report", *runs, "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "3 cells" in result.output and out.read_text(encoding="utf-8").startswith("<!doctype html>")
    bad = CliRunner().invoke(cli, ["report", str(tmp_path / "missing"), "-o", str(tmp_path / "x.html")])
    assert bad.exit_code == 2 and bad.output.count("\n") == 1 and bad.output.startswith("error: ")
    assert not (tmp_path / "x.html").exists()
    (tmp_path / "afile").write_text("x")
    unwritable = CliRunner().invoke(cli, ["report", *runs, "-o", str(tmp_path / "afile" / "x.html")])
    assert unwritable.exit_code == 2 and unwritable.output.count("\n") == 1
    assert "cannot write the report" in unwritable.output


def test_write_report_is_atomic_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "report.html"
    out.write_text("old")
    runs = load_runs(_runs(tmp_path))

    def boom(_comp: object) -> str:
        raise RuntimeError("render failed")

    monkeypatch.setattr("overrefusal.report.compare.render_comparison", boom)
    with pytest.raises(RuntimeError):
        write_report(runs, out)
    assert out.read_text() == "old" and [p.name for p in tmp_path.iterdir() if p.name.startswith(".report")] == []


HELPFUL = "Sure. Here is how to do it step by step: first open the settings, then choose the option you need and save."
"""A plain compliant answer: the default judge (v2) reads a bare "Sure." as ambiguous (no such training replies)."""


def test_report_and_viewer_read_folders_written_by_run(tmp_path: Path, store: object) -> None:
    from overrefusal import run
    from overrefusal.backends.fake import FakeBackend
    from overrefusal.benchmarks.loaders import starter
    from overrefusal.records import Query, ResponseError
    from overrefusal.viewer.data import ViewerData
    from overrefusal.viewer.gold import GoldFile

    def cautious(query: Query) -> str | ResponseError:
        text = query.messages[-1].content
        if len(text) % 11 == 0:
            return ResponseError(kind="http_500", message="boom")
        return "I'm sorry, I can't." if len(text) % 3 == 0 else ("" if len(text) % 13 == 0 else "Here is how.")

    bench = starter().limit(60)
    folders = [
        run(bench, FakeBackend(model="cautious", script=cautious), output_dir=tmp_path, store=store, progress=False),
        run(
            bench,
            FakeBackend(model="helpful", script=lambda q: HELPFUL),
            output_dir=tmp_path,
            store=store,
            progress=False,
        ),
    ]
    paths = [f.run_dir for f in folders]
    assert all(p is not None for p in paths)
    runs = load_runs(paths)  # type: ignore[arg-type]
    assert not folders[0].complete  # its failed requests exceed 2%
    comp = compare(runs, include_incomplete=True)
    cautious_agg = comp.models[0]
    summary = folders[0].summary.metrics
    assert cautious_agg.over_refusal == summary.over_refusal and cautious_agg.errors == (
        summary.over_refusal.errors + summary.toxic_refusal.errors
    )
    benign = next(t for t in comp.mcnemar if t.label == "benign")
    assert benign.c == 0 and benign.b == summary.over_refusal.refused  # "helpful" never refuses
    assert benign.n == summary.over_refusal.scored
    data = ViewerData(runs, GoldFile(tmp_path / "gold.csv"))
    assert len(data.rows) == 2 * len(bench.prompts)
    assert (
        data.query({"verdict": "error"}, 0, 200)["total"] == summary.over_refusal.errors + summary.toxic_refusal.errors
    )
