from __future__ import annotations

import csv
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from overrefusal.report.runs import load_runs
from overrefusal.viewer.data import ViewerData
from overrefusal.viewer.gold import GoldFile
from overrefusal.viewer.server import CSP, TOKEN, TOKEN_HEADER, build_app, start
from run_factory import XSS_IMG, XSS_SCRIPT, make_run
from waits import read_line

XSTEST_COLUMNS = ["id", "type", "prompt", "completion", "final_label"]


def _text(prompt: object, refused: bool) -> str:
    # every 7th compliant answer opens with a refusal phrase the run's judge missed -> judges disagree
    pid = getattr(prompt, "id", "")
    if refused:
        return "I'm sorry, I can't."
    return ("I cannot stress enough: " if pid.endswith("7") else "Sure: ") + XSS_SCRIPT + XSS_IMG


@pytest.fixture
def runs(tmp_path: Path) -> list[Path]:
    return [
        make_run(tmp_path, "alpha", p_benign=0.2, text=_text, errors=2),
        make_run(tmp_path, "beta", p_benign=0.5, text=_text),
    ]


@pytest.fixture
async def server(runs: list[Path], tmp_path: Path) -> AsyncIterator[tuple[str, str, Path]]:
    gold = tmp_path / "labels" / "gold.csv"
    app = build_app(ViewerData(load_runs(runs), GoldFile(gold)))
    runner, port = await start(app, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{port}", app[TOKEN], gold
    finally:
        await runner.cleanup()


async def _get(url: str, **kwargs: object) -> tuple[int, dict[str, object] | str, aiohttp.ClientResponse]:
    async with aiohttp.ClientSession() as session, session.get(url, **kwargs) as res:  # type: ignore[arg-type]
        body = await res.json() if res.content_type == "application/json" else await res.text()
        return res.status, body, res


async def test_filters_and_paging(server: tuple[str, str, Path]) -> None:
    base, _token, _gold = server
    status, everything, res = await _get(f"{base}/api/rows?limit=500")
    assert status == 200 and res.headers["Content-Security-Policy"] == CSP
    assert isinstance(everything, dict) and everything["total"] == 120 and len(everything["rows"]) == 200 - 80
    _, alpha, _ = await _get(f"{base}/api/rows?model=alpha&label=toxic&limit=7&offset=14")
    assert isinstance(alpha, dict) and alpha["total"] == 20 and len(alpha["rows"]) == 6
    assert {r["model"] for r in alpha["rows"]} == {"alpha"} and {r["label"] for r in alpha["rows"]} == {"toxic"}
    _, errors, _ = await _get(f"{base}/api/rows?verdict=error")
    assert isinstance(errors, dict) and errors["total"] == 2 and errors["rows"][0]["error"].startswith("timeout")
    _, disagree, _ = await _get(f"{base}/api/rows?disagree=1&limit=200")
    assert isinstance(disagree, dict) and disagree["total"] > 0
    for row in disagree["rows"]:
        assert row["verdict"] == "compliance" and row["keyword"] == "full_refusal"
    for bad in ("-1", "%C2%B2", "1e3"):  # negative, a superscript digit, not an integer
        status, _, _ = await _get(f"{base}/api/rows?offset={bad}")
        assert status == 400, bad


async def test_relabel_round_trips_to_gold_file(server: tuple[str, str, Path]) -> None:
    base, token, gold = server
    _, page, _ = await _get(f"{base}/api/rows?model=beta&disagree=1&limit=1")
    assert isinstance(page, dict)
    row = page["rows"][0]
    headers = {TOKEN_HEADER: token, "Origin": base}
    async with aiohttp.ClientSession() as session:
        for label in ("2_full_refusal", "1_full_compliance"):
            async with session.post(
                f"{base}/api/relabel", json={"row": row["row"], "final_label": label}, headers=headers
            ) as res:
                assert res.status == 200
                updated = await res.json()
        assert updated["gold"] == "1_full_compliance"
        # run judge (compliance) and the human agree against the keyword judge: still a disagreement
        assert updated["disagree"] is True
    with gold.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0])[:5] == XSTEST_COLUMNS
    assert len(rows) == 1 and rows[0]["final_label"] == "1_full_compliance"
    assert rows[0]["completion"] == row["response"] and rows[0]["prompt"] == row["prompt"]
    assert rows[0]["id"] == row["prompt_id"] and rows[0]["type"] == row["category"] and rows[0]["model"] == "beta"
    assert [p.name for p in gold.parent.iterdir()] == ["gold.csv"]  # no temp file left behind
    _, relabelled, _ = await _get(f"{base}/api/rows?gold=1")
    assert isinstance(relabelled, dict) and relabelled["total"] == 1


def test_gold_file_keeps_other_rows_and_reloads(runs: list[Path], tmp_path: Path) -> None:
    gold = tmp_path / "gold.csv"
    # an XSTest completions file: two models' responses share an id, and annotator columns
    header = "id,type,prompt,completion,annotation_1,annotation_2,agreement,final_label\n"
    xstest = 'v2-1,homonyms,p,"c, one",1_full_compliance,1_full_compliance,True,1_full_compliance\n'
    xstest += "v2-1,homonyms,p,c two,2_full_refusal,3_partial_refusal,False,2_full_refusal\n"
    gold.write_text(header + xstest, encoding="utf-8")
    data = ViewerData(load_runs(runs), GoldFile(gold))
    data.relabel(5, "3_partial_refusal")
    data.relabel(5, "2_full_refusal")  # a second relabel replaces the first
    again = ViewerData(load_runs(runs), GoldFile(gold))
    assert again.rows[5].gold == "2_full_refusal"
    with gold.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    assert reader.fieldnames == [*header.strip().split(","), "model", "response_key"]
    assert [(r["id"], r["completion"], r["annotation_2"]) for r in rows[:2]] == [
        ("v2-1", "c, one", "1_full_compliance"),
        ("v2-1", "c two", "3_partial_refusal"),
    ]
    assert len(rows) == 3 and rows[2]["response_key"] == again.rows[5].response_key
    assert rows[2]["final_label"] == "2_full_refusal" and rows[2]["annotation_1"] == ""


async def test_relabel_refuses_cross_site_and_bad_requests(server: tuple[str, str, Path]) -> None:
    base, token, gold = server
    body = {"row": 3, "final_label": "2_full_refusal"}
    async with aiohttp.ClientSession() as session:
        cases = [
            ({}, body, 403),  # no token
            ({TOKEN_HEADER: "wrong"}, body, 403),
            ({TOKEN_HEADER: token, "Origin": "http://evil.example"}, body, 403),
            ({TOKEN_HEADER: token}, {"row": 3, "final_label": "refusal"}, 400),
            ({TOKEN_HEADER: token}, {"row": 10**6, "final_label": "2_full_refusal"}, 400),
            ({TOKEN_HEADER: token}, {"row": 0, "final_label": "2_full_refusal"}, 400),  # an error row
            ({TOKEN_HEADER: token}, None, 400),  # a JSON null body
            ({TOKEN_HEADER: token}, [3, "2_full_refusal"], 400),  # a JSON list body
        ]
        for headers, payload, expected in cases:
            sent = {**headers, "Content-Type": "application/json"}
            async with session.post(f"{base}/api/relabel", data=json.dumps(payload), headers=sent) as res:
                assert res.status == expected, (headers, payload)
        async with session.post(f"{base}/api/relabel", data="row=3", headers={TOKEN_HEADER: token}) as res:
            assert res.status == 415
    assert not gold.exists()


async def test_serves_nothing_outside_its_routes(server: tuple[str, str, Path], runs: list[Path]) -> None:
    base, _token, _gold = server
    async with aiohttp.ClientSession() as session:
        for path in (
            "/../summary.json",
            "/%2e%2e/%2e%2e/etc/passwd",
            "/static/../../responses.jsonl",
            f"/{runs[0]}/summary.json",
            "/app.js/../../pyproject.toml",
        ):
            async with session.get(URL(base + path, encoded=True)) as res:
                assert res.status == 404, path
        async with session.get(f"{base}/", headers={"Host": "attacker.example:80"}) as res:
            assert res.status == 421  # DNS rebinding: a foreign Host is refused
        async with session.get(f"{base}/") as res:
            page = await res.text()
            assert res.status == 200 and 'name="overrefusal-token"' in page and "{{TOKEN}}" not in page


def test_cli_view_serves_on_a_free_local_port(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys
    import urllib.request

    run = make_run(tmp_path, "alpha")
    cli = Path(sys.executable).with_name("overrefusal")
    proc = subprocess.Popen([str(cli), "view", str(run)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        line = read_line(proc.stdout, 60)
        assert line.startswith("serving http://127.0.0.1:"), line
        url = line.split()[1]
        with urllib.request.urlopen(url + "api/meta", timeout=10) as res:
            meta = json.load(res)
        assert meta["total"] == 60 and meta["models"] == ["alpha"] and meta["gold_file"] == "gold.csv"
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def test_cli_view_rejects_a_folder_that_is_not_a_run(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from overrefusal.cli import cli

    result = CliRunner().invoke(cli, ["view", str(tmp_path)])
    assert result.exit_code == 2 and result.output.startswith("error: ") and "not a run folder" in result.output


def test_cli_view_on_a_busy_port_is_a_one_line_error(tmp_path: Path) -> None:
    import socket

    from click.testing import CliRunner

    from overrefusal.cli import cli

    run = make_run(tmp_path, "alpha")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(cli, ["view", str(run), "--port", str(port)])
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1 and f"cannot listen on 127.0.0.1:{port}" in result.output
