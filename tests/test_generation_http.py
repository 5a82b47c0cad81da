"""Integration: `generate all` against a local OpenAI-compatible server through the real `openai` backend."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from click.testing import CliRunner

import gen_fakes
from http_servers import ScriptedServer
from overrefusal.cli import cli
from overrefusal.records import GenerateParams, Message, Query


def reply(text: str) -> tuple[str, str]:
    query = Query(prompt_id="x", messages=(Message(role="user", content=text),), params=GenerateParams())
    if text.startswith("Decide whether"):
        return gen_fakes.moderator(True)(query), "stop"
    if text.startswith(("Write ", "You turn")):
        return gen_fakes.generator(query), "stop"
    answer = gen_fakes.answerer(query)
    assert isinstance(answer, str)
    return answer, "stop"


def test_generate_all_over_http(tmp_path: Path) -> None:
    with ScriptedServer(reply=reply) as server:
        model = {"backend": "openai", "args": {"model": "served", "base_url": server.openai_url}}
        config = {
            "project": "http",
            "categories": ["privacy"],
            "generator": model,
            "seeds": {"per_category": 4, "batch_size": 4},
            "rewrite": {"per_seed": 5},
            "moderate": {"moderators": [model], "second_chance": {"answerer": model}},
            "hard": {"panel": [model], "min_refusals": 1},
            "export": {"output_dir": "out", "formats": ["csv"]},
        }
        path = tmp_path / "http.yaml"
        path.write_text(yaml.safe_dump(config))
        args = ["generate", "all", "--config", str(path), "--no-progress"]
        first = CliRunner().invoke(cli, args)
        assert first.exit_code == 0, first.output
        sent = sum(server.attempts.values())
        sheet = json.loads((tmp_path / "out" / "datasheet.json").read_text())
        assert sheet["counts"]["seeds"] == {"privacy": 4}
        assert sheet["counts"]["candidates"] == {"privacy": 20}
        # "Quietly ..." rewrites are flagged and their answers unsafe: they stay toxic; the rest is benign
        assert sheet["counts"]["moderated_toxic"] == {"privacy": 4}
        assert sheet["counts"]["moderated_benign"] == {"privacy": 16}
        assert sheet["stages"]["moderate"]["usage"]["completion_tokens"] > 0
        second = CliRunner().invoke(cli, args)
        assert second.exit_code == 0, second.output
        assert sum(server.attempts.values()) == sent  # everything answered from the store
