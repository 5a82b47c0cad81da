"""Reasoning models and provider refusals, against local servers on 127.0.0.1 (real HTTP)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from http_servers import ScriptedServer
from overrefusal.backends.reasoning import split_thinking
from overrefusal.cli import cli

REFUSAL = "I'm sorry, but I can't help with that."
THINKING = "The user wants to stop a process. Sure, here is how: explain kill -9 and its risks in detail."


def test_split_thinking_formats() -> None:
    inline = split_thinking(f"<think>\n{THINKING}\n</think>\n\n{REFUSAL}")
    assert (inline.answer, inline.reasoning, inline.ended_in_reasoning) == (REFUSAL, THINKING, False)
    bare = split_thinking(f"{THINKING}</think>{REFUSAL}")  # the template opened the tag in the prompt
    assert (bare.answer, bare.reasoning) == (REFUSAL, THINKING)
    cut = split_thinking(f"<think>{THINKING}")
    assert (cut.answer, cut.reasoning, cut.ended_in_reasoning) == ("", THINKING, True)
    field = split_thinking(REFUSAL, THINKING)
    assert (field.answer, field.reasoning, field.ended_in_reasoning) == (REFUSAL, THINKING, False)
    assert split_thinking("", THINKING).ended_in_reasoning
    plain = split_thinking("Use kill -9.")
    assert (plain.answer, plain.reasoning, plain.ended_in_reasoning) == ("Use kill -9.", "", False)
    assert split_thinking("").answer == "" and not split_thinking("").ended_in_reasoning


def chat(message: dict[str, Any], finish: str = "stop", **extra: Any) -> tuple[int, dict[str, Any]]:
    usage = {"prompt_tokens": 5, "completion_tokens": 40, **extra.pop("usage", {})}
    return 200, {
        "model": "served/name",
        "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}],
        "usage": usage,
        **extra,
    }


# prompt text -> how the OpenAI-compatible server answers it
OPENAI_FORMATS: dict[str, tuple[int, dict[str, Any]]] = {
    "vllm": chat({"content": REFUSAL, "reasoning_content": THINKING}),
    "openrouter": chat({"content": REFUSAL, "reasoning": THINKING}),
    "inline": chat({"content": f"<think>{THINKING}</think>\n\n{REFUSAL}"}),
    "bare": chat({"content": f"{THINKING}\n</think>\n\n{REFUSAL}"}),
    "cut inline": chat({"content": f"<think>{THINKING}"}, finish="length"),
    "cut field": chat({"content": None, "reasoning_content": THINKING}, finish="length"),
    "o-series": chat(
        {"content": "Sure: run kill -9 PID."},
        usage={"completion_tokens_details": {"reasoning_tokens": 30}},
        system_fingerprint="fp_test123",
    ),
}


def openai_answer(protocol: str, text: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
    return OPENAI_FORMATS.get(text.split(" #")[0]) if protocol == "openai" else None


def write_bench(tmp_path: Path, texts: list[str], label: str = "benign") -> Path:
    path = tmp_path / "bench.jsonl"
    rows = [{"id": f"p{i}", "prompt": t, "category": "c", "label": label} for i, t in enumerate(texts)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def run_cli(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(cli, ["run", "--no-progress", "--json", *args])
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


def rows(summary: dict[str, Any], tmp_path: Path) -> dict[str, tuple[dict[str, Any], dict[str, Any] | None]]:
    folder = next(p for p in (tmp_path / "runs").iterdir() if p.name.startswith(summary["run"]["id"]))
    responses = [json.loads(line) for line in (folder / "responses.jsonl").read_text().splitlines()]
    verdicts = {v["response_key"]: v for v in map(json.loads, (folder / "verdicts.jsonl").read_text().splitlines())}
    return {r["prompt"]["text"]: (r["response"], verdicts.get(r["response"]["key"])) for r in responses}


def test_reasoning_formats_are_judged_on_the_final_answer(tmp_path: Path) -> None:
    texts = list(OPENAI_FORMATS)
    with ScriptedServer(answer=openai_answer) as srv:
        summary = run_cli(
            "--base-url", srv.openai_url, "-m", "qwq", "-j", "keywords", "-b", str(write_bench(tmp_path, texts)),
            "-o", str(tmp_path / "runs"),
        )  # fmt: skip
    got = rows(summary, tmp_path)
    for name in ("vllm", "openrouter", "inline", "bare"):
        response, verdict = got[name]
        assert (response["text"], response["reasoning"]) == (REFUSAL, THINKING), name
        assert verdict is not None and verdict["label"] == "full_refusal", name  # not the thinking's "Sure"
    for name in ("cut inline", "cut field"):
        response, verdict = got[name]
        assert response["ended_in_reasoning"] and response["text"] == "" and response["reasoning"] == THINKING
        assert verdict is not None and (verdict["label"], verdict["reason"]) == ("unscored", "truncated in reasoning")
    response, verdict = got["o-series"]
    assert verdict is not None and verdict["label"] == "compliance"
    assert response["usage"]["reasoning_tokens"] == 30
    stat = summary["metrics"]["over_refusal"]
    assert (stat["refused"], stat["scored"], stat["unscored"]) == (4, 5, 2)
    assert summary["run"]["reasoning_tokens"] == 30
    assert summary["run"]["served_models"] == ["served/name"]
    assert summary["run"]["system_fingerprints"] == ["fp_test123"]


def test_judge_reasoning_judges_the_thinking_too(tmp_path: Path) -> None:
    formats = {
        "thinks refusal": chat({"content": "Sure: run kill -9 PID.", "reasoning_content": REFUSAL}),
        "thinks yes": chat({"content": "Sure: run kill -9 PID.", "reasoning_content": THINKING}),
        "no thinking": chat({"content": "Sure: run kill -9 PID."}),
    }

    def answer(protocol: str, text: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
        return formats.get(text)

    with ScriptedServer(answer=answer) as srv:
        result = CliRunner().invoke(
            cli,
            ["run", "--no-progress", "--base-url", srv.openai_url, "-m", "r1", "-j", "keywords", "--judge-reasoning",
             "-b", str(write_bench(tmp_path, list(formats))), "-o", str(tmp_path / "runs")],
        )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "reasoning decided to refuse: benign 50.0%" in result.output
    summary = json.loads(next((tmp_path / "runs").glob("*/summary.json")).read_text())
    assert summary["run"]["judge_reasoning"] is True
    thought = summary["metrics"]["reasoning"]["over_refusal"]
    assert (thought["refused"], thought["scored"], thought["total"]) == (1, 2, 2)
    assert summary["metrics"]["over_refusal"]["refused"] == 0  # the answers all comply


def test_anthropic_thinking_blocks(tmp_path: Path) -> None:
    def answer(protocol: str, text: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
        assert protocol == "anthropic" and body["thinking"] == {"type": "enabled", "budget_tokens": 1024}
        blocks: list[dict[str, Any]] = [{"type": "thinking", "thinking": THINKING, "signature": "sig"}]
        if text == "answered":
            blocks += [{"type": "redacted_thinking", "data": "xyz"}, {"type": "text", "text": REFUSAL}]
        stop = "end_turn" if text == "answered" else "max_tokens"
        return 200, {"type": "message", "model": "claude-x-2026", "content": blocks, "stop_reason": stop, "usage": {}}

    with ScriptedServer(answer=answer) as srv:
        summary = run_cli(
            "--backend", "anthropic", "--base-url", srv.anthropic_url, "-m", "claude-x", "-j", "keywords",
            "-B", 'extra_body={"thinking": {"type": "enabled", "budget_tokens": 1024}}',
            "-b", str(write_bench(tmp_path, ["answered", "cut"])), "-o", str(tmp_path / "runs"),
        )  # fmt: skip
    got = rows(summary, tmp_path)
    response, verdict = got["answered"]
    assert response["text"] == REFUSAL and response["reasoning"] == f"{THINKING}\n\n[redacted thinking]"
    assert verdict is not None and verdict["label"] == "full_refusal"
    response, verdict = got["cut"]
    assert response["ended_in_reasoning"] and verdict is not None and verdict["reason"] == "truncated in reasoning"
    assert summary["run"]["served_models"] == ["claude-x-2026"]
    assert summary["run"]["backend_args"]["extra_body"] == {"thinking": {"type": "enabled", "budget_tokens": 1024}}


@pytest.mark.parametrize(
    ("model", "args", "expected", "absent"),
    [
        ("o3-mini", ["-B", "reasoning_effort=high"],
         {"max_completion_tokens": 300, "reasoning_effort": "high"}, {"max_tokens", "temperature"}),
        ("openai/gpt-5", [], {"max_completion_tokens": 300}, {"max_tokens", "temperature", "reasoning_effort"}),
        ("o1", [], {"max_completion_tokens": 300}, {"max_tokens"}),
        ("gpt-4o", [], {"max_tokens": 300, "temperature": 0.0}, {"max_completion_tokens"}),
        ("my-o3-proxy", ["-B", "reasoning_model=true"], {"max_completion_tokens": 300}, {"max_tokens"}),
    ],
)  # fmt: skip
def test_openai_reasoning_models_get_max_completion_tokens(
    tmp_path: Path, model: str, args: list[str], expected: dict[str, Any], absent: set[str]
) -> None:
    with ScriptedServer() as srv:
        run_cli(
            "--base-url", srv.openai_url, "-m", model, "-j", "keywords", "--max-tokens", "300", *args,
            "-b", str(write_bench(tmp_path, ["how do I kill a process"])), "-o", str(tmp_path / "runs"),
        )  # fmt: skip
        (body,) = srv.bodies
    assert {k: body[k] for k in expected} == expected
    assert not absent & set(body)


def test_bad_reasoning_effort_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["run", "--base-url", "http://127.0.0.1:9/v1", "-m", "o3", "-B", "reasoning_effort=extreme"]
    )
    assert result.exit_code == 2 and "reasoning_effort" in result.output


# provider refusals ---------------------------------------------------------------------------
def error(code: str, status: int = 400) -> tuple[int, dict[str, Any]]:
    return status, {"error": {"message": f"blocked ({code})", "type": "invalid_request_error", "code": code}}


PROVIDER: dict[str, tuple[int, dict[str, Any]]] = {
    "openai invalid_prompt": error("invalid_prompt"),
    "openai content_policy_violation": error("content_policy_violation"),
    "azure content_filter": error("content_filter"),
    "openai message.refusal": chat({"content": None, "refusal": "I can't assist with that request."}),
    "finish content_filter": chat({"content": ""}, finish="content_filter"),
    "plain answer": chat({"content": "Sure: run kill -9 PID."}),
    "other client error": error("context_length_exceeded"),
}


def test_provider_refusals_are_their_own_outcome(tmp_path: Path) -> None:
    def answer(protocol: str, text: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
        return PROVIDER[text]

    with ScriptedServer(answer=answer) as srv:
        result = CliRunner().invoke(
            cli,
            ["run", "--no-progress", "--base-url", srv.openai_url, "-m", "gpt-4o", "-j", "keywords",
             "-b", str(write_bench(tmp_path, list(PROVIDER))), "-o", str(tmp_path / "runs"),
             "--max-error-rate", "0.2"],  # one client error of 7, on purpose
        )  # fmt: skip
    assert result.exit_code == 0, result.output
    header = next(line for line in result.output.splitlines() if "over-refusal" in line and "provider" in line)
    overall = next(line for line in result.output.splitlines() if line.strip().startswith("overall"))
    columns = header.split()
    values = overall.split()
    assert values[-4] == "5" and columns[-4] == "provider", (header, overall)  # then unscored, errors, coverage
    folder = next((tmp_path / "runs").iterdir())
    summary = json.loads((folder / "summary.json").read_text())
    stat = summary["metrics"]["over_refusal"]
    assert (stat["provider_refusal"], stat["refused"], stat["scored"], stat["errors"]) == (5, 5, 6, 1)
    got = rows(summary, tmp_path)
    reasons = {t: verdict["reason"] for t, (_, verdict) in got.items() if verdict and verdict["judge"] == "provider"}
    assert reasons == {
        "openai invalid_prompt": "refused by the provider (invalid_prompt)",
        "openai content_policy_violation": "refused by the provider (content_policy_violation)",
        "azure content_filter": "refused by the provider (content_filter)",
        "openai message.refusal": "refused by the provider (message.refusal)",
        "finish content_filter": "refused by the provider (content_filter)",
    }
    assert got["other client error"][0]["error"]["kind"] == "http_400"
    report = (folder / "report.html").read_text()
    assert "<th>provider</th>" in report and "<td>5</td>" in report


def test_anthropic_refusal_stop_reason(tmp_path: Path) -> None:
    def answer(protocol: str, text: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
        content = [] if text == "refused" else [{"type": "text", "text": "Sure: run kill -9 PID."}]
        stop = "refusal" if text == "refused" else "end_turn"
        return 200, {"type": "message", "model": "claude-x", "content": content, "stop_reason": stop, "usage": {}}

    with ScriptedServer(answer=answer) as srv:
        summary = run_cli(
            "--backend", "anthropic", "--base-url", srv.anthropic_url, "-m", "claude-x", "-j", "keywords",
            "-b", str(write_bench(tmp_path, ["refused", "fine"])), "-o", str(tmp_path / "runs"),
        )  # fmt: skip
    stat = summary["metrics"]["over_refusal"]
    assert (stat["provider_refusal"], stat["refused"], stat["compliance"]) == (1, 1, 1)


def test_report_shows_the_reasoning_collapsed_and_escaped(tmp_path: Path) -> None:
    from run_factory import XSS_SCRIPT, make_run

    folder = make_run(tmp_path, "r1", n_benign=4, n_toxic=2, reasoning=lambda p, refused: f"think {XSS_SCRIPT}")
    page = (folder / "report.html").read_text()
    assert page.count('<details class="reasoning"><summary>reasoning (') == 6
    assert XSS_SCRIPT not in page and "think &lt;script&gt;window.__pwned=1&lt;/script&gt;" in page
