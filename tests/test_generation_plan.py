"""``generate plan``: calls, tokens and cost per stage and model, before anything is sent; bounds hold on a real run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

import gen_fakes
from overrefusal.cli import cli
from overrefusal.generation import load_config, run_all
from overrefusal.generation.common import Stage
from overrefusal.generation.plan import plan, totals
from overrefusal.store import Store
from test_generation_pipeline import spec, write_config


@pytest.fixture(autouse=True)
def _scripted() -> Iterator[None]:
    from overrefusal.backends import backends

    with backends.temporarily("scripted", gen_fakes.scripted):
        yield


def by_stage(lines: list) -> dict[tuple[str, str], tuple[int, int]]:
    return {(line.stage, line.role): (line.calls, line.max_calls) for line in lines}


def test_plan_counts_follow_the_stage_rules(tmp_path: Path, store: Store) -> None:
    config = load_config(write_config(tmp_path))
    calls = by_stage(plan(Stage(config=config, store=store, progress=False)))
    # 2 categories x 8 seeds in batches of 4: 4 calls, at most 6 per category (the configured budget)
    assert calls[("seeds", "generator")] == (4, 12)
    assert calls[("rewrite", "generator")] == (16, 16 * 3)  # one call per seed, two retries at most
    assert calls[("moderate", "moderator_1")] == (80, 160)  # one per candidate, one parse retry
    assert calls[("moderate: 2nd pass", "moderator_2")] == (40, 40)
    assert calls[("moderate: 2nd chance", "answerer")] == (20, 80)
    assert calls[("hard", "panel_3")] == (60, 80)
    assert store.count_responses()[0] == 0  # nothing was sent


def test_plan_bounds_the_real_run_and_prices_it(tmp_path: Path, store: Store) -> None:
    price = {"input_per_mtok": 2.0, "output_per_mtok": 8.0}
    config = load_config(write_config(tmp_path, generator={**spec("gen"), "price": price}))
    lines = plan(Stage(config=config, store=store, progress=False))
    seeds = next(line for line in lines if line.stage == "seeds")
    assert seeds.cost == pytest.approx((seeds.prompt_tokens * 2.0 + seeds.completion_tokens * 8.0) / 1e6)
    assert totals(lines)["cost"] is None and "scripted:mod-strict" in totals(lines)["unpriced_models"]
    reports = run_all(config, store=store, progress=False)
    sent = {name: r["usage"]["requests_sent"] for name, r in reports.items()}
    planned = by_stage(lines)
    assert planned[("seeds", "generator")][0] <= sent["seeds"] <= planned[("seeds", "generator")][1]
    assert planned[("rewrite", "generator")][0] <= sent["rewrite"] <= planned[("rewrite", "generator")][1]
    moderate_max = sum(most for (stage, _), (_, most) in planned.items() if stage.startswith("moderate"))
    assert sent["moderate"] <= moderate_max
    assert sent["hard"] <= sum(most for (stage, _), (_, most) in planned.items() if stage == "hard")
    # once stages have run, the plan uses their real counts: the panel is planned on the kept benign prompts
    again = by_stage(plan(Stage(config=config, store=store, progress=False)))
    kept = reports["hard"]["usage"]["requests_sent"] // 3
    assert again[("hard", "panel_1")] == (kept, kept)


def test_plan_command_sends_nothing(tmp_path: Path) -> None:
    log = tmp_path / "calls.log"
    path = write_config(tmp_path)
    runner = CliRunner()
    result = runner.invoke(cli, ["generate", "plan", "--config", str(path)], env={"GEN_CALL_LOG": str(log)})
    assert result.exit_code == 0, result.output
    assert "plan of demo" in result.output and "moderate: 2nd pass" in result.output
    assert "no price configured for scripted:answerer" in result.output
    assert result.output.strip().endswith("nothing was sent; calls already in the cache will not be sent again")
    assert not log.exists()
    data = json.loads(runner.invoke(cli, ["generate", "plan", "--config", str(path), "--json"]).output)
    assert data["total"]["calls"] == sum(line["calls"] for line in data["lines"])
    bad = runner.invoke(cli, ["generate", "plan", "--config", str(tmp_path / "missing.yaml")])
    assert bad.exit_code == 2 and "does not exist" in bad.output


def test_plan_of_a_search_is_capped_by_its_budget(tmp_path: Path, store: Store) -> None:
    from overrefusal.generation.config import ModelSpec

    search = {"start": 10, "population": 4, "mutations": 2, "rounds": 3, "budget": 100}
    config = load_config(write_config(tmp_path, search=search))
    target = ModelSpec(backend="scripted", args={"model": "target"})
    calls = by_stage(plan(Stage(config=config, store=store, progress=False), target))
    assert ("search", "target") in calls
    # 12 mutation calls, then 34 prompts moderated (at most twice each) by two moderators, until 100 calls
    assert calls[("search", "generator")] == (12, 12)
    assert calls[("search", "moderator_1")] == (68, 68)
    assert calls[("search", "moderator_2")] == (20, 20)
    assert calls[("search", "target")] == (0, 0)
    result = CliRunner().invoke(cli, ["generate", "plan", "--config", str(tmp_path / "project.yaml"), "--target", "x"])
    assert result.exit_code == 2 and "neither BACKEND:MODEL" in result.output
