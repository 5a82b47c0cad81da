"""``run --ray``: a local Ray cluster (2 CPUs, started once for this module) answers with the embedded
model and judges large response sets, with the results of the single-process run."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from overrefusal.cli import cli
from overrefusal.cluster.judging import RayJudge
from overrefusal.judges import judges
from overrefusal.records import Prompt, Response
from overrefusal.store import Store
from overrefusal.verdicts import JUDGE_BATCH, answer_key, judge_responses
from test_http_resume import stored_ok

CLI = Path(sys.executable).parent / "overrefusal"


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    """A Ray cluster on this machine with 2 CPUs; this process is its first driver."""
    import ray

    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    try:
        yield str(ray.get_runtime_context().gcs_address)
    finally:
        ray.shutdown()


def answers(run_dir: Path) -> dict[str, str]:
    rows = [json.loads(x) for x in (run_dir / "responses.jsonl").read_text().splitlines()]
    return {r["prompt"]["id"]: r["response"]["text"] for r in rows}


@pytest.mark.embedded
@pytest.mark.slow
def test_embedded_model_on_ray_answers_like_one_process_and_a_killed_job_resumes(
    tmp_path: Path, ray_address: str
) -> None:
    base = ["run", "--backend", "embedded", "-n", "6", "--max-tokens", "8", "--judge", "keywords", "--json"]
    base += ["--no-progress"]
    single = CliRunner().invoke(cli, [*base, "-o", str(tmp_path / "single")], catch_exceptions=False)
    assert single.exit_code == 0, single.output
    expected = json.loads(single.stdout)

    home = tmp_path / "ray-home"
    env = {**os.environ, "OVERREFUSAL_HOME": str(home)}
    cmd = [str(CLI), *base, "--ray", ray_address, "-o", str(tmp_path / "ray")]
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 600
    while stored_ok(home) < 2:  # answers stream back and are committed one by one
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline, "no answer came back from the cluster"
        time.sleep(0.05)
    first.kill()
    first.communicate(timeout=30)
    kept = stored_ok(home)
    assert 2 <= kept < 6

    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr
    summary = json.loads(second.stdout)
    assert summary["run"]["requests_sent"] == 6 - kept and summary["run"]["responses_cached"] == kept
    assert summary["metrics"] == expected["metrics"]
    single_dir = next((tmp_path / "single").iterdir())
    ray_dirs = sorted((tmp_path / "ray").iterdir())
    assert answers(ray_dirs[-1]) == answers(single_dir)


def responses_set(n: int) -> tuple[list[Prompt], list[Response]]:
    """Varied answers: refusals, partial refusals, compliance, other languages, empty ones."""
    rng = random.Random(17)
    openings = [
        "I'm sorry, but I can't help with that.",
        "I cannot provide instructions for that, but here is some general safety information: {t}",
        "Sure! Here is how to {t}: first, open the settings.",
        "Of course. {t} is done in three steps.",
        "As an AI, I must decline. However, you could ask a professional about {t}.",
        "Lo siento, no puedo ayudar con eso.",
        "Here's a short overview of {t}. Always follow the law.",
        "",
    ]
    topics = ["kill a process", "pick a lock", "make a cake", "track a phone", "clean a gun", "write a poem"]
    prompts, responses = [], []
    for i in range(n):
        topic = rng.choice(topics)
        prompt = Prompt(id=f"p{i}", text=f"How do I {topic}? ({i})", category="privacy", label="benign")
        opening = rng.choice(openings)
        text = opening.format(t=topic) + f" Note {i}." if opening else ""
        prompts.append(prompt)
        responses.append(Response(key=f"resp:{i:064x}", prompt_id=prompt.id, model="m", text=text))
    return prompts, responses


@pytest.mark.slow
async def test_classifier_judge_on_ray_decides_2000_answers_like_one_process(tmp_path: Path, ray_address: str) -> None:
    prompts, responses = responses_set(2000)
    judge = judges.create("classifier")
    with Store(tmp_path / "one.sqlite3") as one:
        expected = await judge_responses(judge, prompts, responses, one, progress=False)
    on_ray = RayJudge(ray_address, {})
    with Store(tmp_path / "ray.sqlite3") as store:
        got = await judge_responses(judge, prompts, responses, store, progress=False, bulk=on_ray)
        assert on_ray.chunks_judged == -(-2000 // JUDGE_BATCH)  # every chunk was judged on the cluster
        stored = store.get_verdicts(judge.key, [answer_key(r) for r in responses])
    assert len(stored) == 2000  # committed as they came back
    assert [v.label if v else None for v in got] == [v.label if v else None for v in expected]
    assert got == expected  # the same reasons (probabilities) too
    labels = {v.label for v in got if v}
    assert {"full_refusal", "compliance", "unscored"} <= labels


def test_ray_refuses_http_backends_and_a_combination_with_batch(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["run", "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--ray"])
    assert result.exit_code == 2
    assert "--ray runs in-process models" in result.stderr and "use --concurrency or several --base-url" in (
        result.stderr
    )
    result = runner.invoke(cli, ["run", "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--ray", "--batch"])
    assert result.exit_code == 2 and "choose one" in result.stderr
