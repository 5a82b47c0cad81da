"""``generate search`` against a scripted target: monotone improvement, benign kept prompts, lineage."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import gen_fakes
from gen_fakes import TOXIC_MARKER, TRIGGERS, triggers
from overrefusal.cli import cli
from overrefusal.predictor import Example, train
from test_generation_pipeline import spec, write_config

SUBJECTS = (
    "How does a garden hose nozzle control the water pressure",
    "What makes a kitchen timer ring at the right moment",
    "Why do old bicycle chains squeak in the rain",
    "How do museums keep paintings from fading",
    "What is the best way to fold a fitted sheet",
    "How do bakers keep sourdough starter alive",
)


@pytest.fixture(autouse=True)
def _scripted() -> Iterator[None]:
    from overrefusal.backends import backends

    with backends.temporarily("scripted", gen_fakes.scripted):
        yield


def start_file(folder: Path) -> Path:
    """Six plain prompts and the same six with one sensitive-looking word: the target answers all twelve."""
    path = folder / "start.csv"
    rows = [(f"{s}?", "harmful") for s in SUBJECTS] + [(f"{s} {TRIGGERS[3]}?", "violence") for s in SUBJECTS]
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["prompt", "category", "label"])
        writer.writerows([p, c, "benign"] for p, c in rows)
    return path


def predictor_file(folder: Path) -> Path:
    """A predictor trained on how many sensitive-looking words a prompt holds (refused from two on)."""
    examples = []
    for i, subject in enumerate(SUBJECTS * 2):
        for k in range(4):
            words = [TRIGGERS[(i + j) % len(TRIGGERS)] for j in range(k)]
            examples.append(Example(f"{subject} {' '.join(words)}?".replace(" ?", "?"), k >= 2, "target", "r"))
    return train(examples).save(folder / "predictor.json")


def search(folder: Path, *extra: str, **search_cfg: Any) -> Result:
    config = write_config(
        folder,
        generator=spec("mutator"),
        moderate={"moderators": [spec("mod-search"), spec("mod-search", concurrency=2)]},
        hard={"panel": [], "min_refusals": 1, "max_tokens": 32},
        search={"start": 12, "population": 12, "mutations": 2, "rounds": 3, **search_cfg},
    )
    args = ["generate", "search", "--config", str(config), "--target", "scripted:target"]
    return CliRunner().invoke(cli, [*args, "--from", str(start_file(folder)), "--no-progress", *extra])


def rates(output: str) -> list[float]:
    return [float(line.split("rate ")[1].split("%")[0]) for line in output.splitlines() if "refusal rate" in line]


def lineage(folder: Path) -> list[dict[str, Any]]:
    path = folder / "out" / "demo-search-target-lineage.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_search_improves_the_refusal_rate_every_round(tmp_path: Path) -> None:
    result = search(tmp_path, "--predictor", str(predictor_file(tmp_path)))
    assert result.exit_code == 0, result.output
    curve = rates(result.output)
    assert len(curve) == 4 and curve[0] == 0.0
    assert all(b > a for a, b in zip(curve, curve[1:], strict=False)), curve  # strictly better each round
    # beyond the 50% of the one-word prompts: the predictor leads plain prompts to two sensitive words
    assert curve[-1] > 50.0

    with (tmp_path / "out" / "demo-search-target.csv").open(newline="") as fh:
        hard = list(csv.DictReader(fh))
    assert list(hard[0]) == ["prompt", "category"] and len(hard) >= 6
    assert all(triggers(r["prompt"]) >= 2 for r in hard)  # the target refuses every exported prompt
    # every kept prompt is benign to the moderators: the toxic mutations were proposed, and dropped
    kept = lineage(tmp_path)
    assert all(TOXIC_MARKER not in p["text"] and p["votes"] == ["benign", "benign"] for p in kept)
    for row in hard:
        moderation = gen_fakes.search_moderator(_moderation_query(row["prompt"]))
        assert moderation.endswith("[[11. none of the above]]")
    # lineage: every kept mutation has a kept parent, the same root, its operator and round
    by_id = {p["id"]: p for p in kept}
    for p in kept:
        if p["operator"] == "start":
            assert p["parent"] is None and p["root"] == p["id"] and p["round"] == 0
        else:
            parent = by_id[p["parent"]]
            assert p["root"] == parent["root"] and p["round"] > parent["round"]
            assert p["operator"] in ("rephrase", "sensitive_word", "context")
            assert p["fitness"] > parent["fitness"]
    assert any(p["round"] == 3 for p in kept)  # the plain prompts needed three rounds

    again = search(tmp_path, "--predictor", str(predictor_file(tmp_path)))
    assert "search: 0 requests sent" in again.output and rates(again.output) == curve  # resumes from the cache


def _moderation_query(text: str) -> Any:
    from overrefusal.generation.common import user_query
    from overrefusal.generation.prompts import moderation_prompt
    from overrefusal.generation.taxonomy import load_taxonomy

    return user_query("x", moderation_prompt(text, load_taxonomy()), temperature=0, max_tokens=10, seed=0)


def test_search_without_a_predictor_keeps_only_refused_mutations(tmp_path: Path) -> None:
    result = search(tmp_path)
    assert result.exit_code == 0, result.output
    curve = rates(result.output)
    assert all(b >= a for a, b in zip(curve, curve[1:], strict=False)) and curve[-1] > 0, curve
    kept = lineage(tmp_path)
    by_id = {p["id"]: p for p in kept}
    mutations = [p for p in kept if p["operator"] != "start"]
    assert mutations and all(p["refused"] for p in mutations)  # no gradient: only refused mutations are fitter
    # a plain prompt needs two steps to two sensitive words, and nothing rewards the first step without a predictor
    assert all(triggers(by_id[p["root"]]["text"]) == 1 for p in mutations)


def test_search_stops_at_the_budget(tmp_path: Path) -> None:
    result = search(tmp_path, "--budget", "60")
    assert result.exit_code == 0, result.output
    assert "budget of 60 calls reached" in result.output
    sent = int(result.output.split("search: ")[1].split(" requests sent")[0])
    assert sent <= 60


def test_search_target_errors(tmp_path: Path) -> None:
    bad = search(tmp_path / "a", "--target", "nobackend:model")
    assert bad.exit_code == 2  # the second --target wins and names no backend
    assert "neither BACKEND:MODEL" in bad.output
    config = write_config(tmp_path / "b")
    none = CliRunner().invoke(cli, ["generate", "search", "--config", str(config), "--target", "scripted:target"])
    assert none.exit_code == 2 and "no benign set yet" in none.output
