"""The report and the viewer driven in headless Chromium (Debian's ``chromium``) through Playwright.

Set ``OVERREFUSAL_SCREENSHOTS=1`` to refresh ``docs/screenshots/{report,viewer}.png`` for the README.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import csv
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from overrefusal.report.compare import write_report
from overrefusal.report.runs import load_runs
from overrefusal.viewer.data import ViewerData
from overrefusal.viewer.gold import GoldFile
from overrefusal.viewer.server import build_app, start
from run_factory import XSS_IMG, XSS_SCRIPT, make_run

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
VIEWPORT = {"width": 1280, "height": 800}

pytest.importorskip("plotly")
sync_api = pytest.importorskip("playwright.sync_api")
if not Path(CHROMIUM).exists():
    pytest.skip("chromium not installed (apt-get install chromium; .ci/run installs it)", allow_module_level=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    # module scope: one browser for all tests here, closed before other modules' tests, because
    # Playwright's sync API keeps an event loop running in this thread while it is open
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


class Watch:
    """A page with every dialog, page error and non-local request recorded."""

    def __init__(self, browser: Any, allowed: str) -> None:
        # the pages' Content-Security-Policy would block injected scripts anyway: bypass it, so that
        # only escaping stands between a payload and its execution, and these checks can fail
        self.page = browser.new_page(viewport=VIEWPORT, bypass_csp=True)
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.outside: list[str] = []
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: None if r.url.startswith(allowed) else self.outside.append(r.url))

    def assert_clean(self) -> None:
        assert self.page.evaluate("typeof window.__pwned") == "undefined"
        assert self.dialogs == [] and self.errors == [] and self.outside == []

    def screenshot(self, name: str) -> None:
        if os.environ.get("OVERREFUSAL_SCREENSHOTS") == "1":
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(SCREENSHOTS / name))


def _payload(prompt: Any, refused: bool) -> str:
    return "I'm sorry, but I can't help with that." if refused else f"Sure! {XSS_SCRIPT} {XSS_IMG} here you go."


def test_report_draws_one_point_per_model_and_runs_no_payload(browser: Any, tmp_path: Path) -> None:
    runs = [
        make_run(tmp_path, "qwen2.5-0.5b", p_benign=0.15, p_toxic=0.7, text=_payload),
        make_run(tmp_path, "qwen2.5-0.5b", "or-bench-hard-1k", p_benign=0.45, p_toxic=0.7),
        make_run(tmp_path, f"llama{XSS_IMG}", p_benign=0.4, p_toxic=0.95, text=_payload),
        make_run(tmp_path, "smollm2-135m", p_benign=0.05, p_toxic=0.3, errors=4),
        make_run(tmp_path, "gpt-x", p_benign=0.25, p_toxic=0.85),
    ]
    out = tmp_path / "report.html"
    comp = write_report(load_runs(runs), out)
    assert comp.examples  # discordant examples (carrying the payloads) are in the page
    watch = Watch(browser, "file://")
    page = watch.page
    page.goto(out.as_uri())
    for name in ("scatter", "benign", "toxic"):
        page.wait_for_selector(f"#fig-{name}[data-drawn='1']", timeout=30_000)
    points = page.locator("#fig-scatter .scatterlayer .trace").first.locator("path.point")
    assert points.count() == 4 == page.evaluate("document.getElementById('fig-scatter').data[0].x.length")
    assert page.locator("#leaderboard tr.model-row").count() == 4
    assert page.locator("#examples").inner_text().count("here you go") > 0  # payload shown as text
    assert page.locator("#fig-benign .barlayer .trace").count() == 4
    assert page.locator("#leaderboard img, #examples img, #examples script, #mcnemar img").count() == 0
    watch.assert_clean()
    watch.screenshot("report.png")
    page.close()


def test_report_with_variants_and_reference_draws_one_point_per_cell(browser: Any, tmp_path: Path) -> None:
    runs = [
        make_run(tmp_path, "qwen", variant="none", p_benign=0.4, p_toxic=0.8, text=_payload),
        make_run(tmp_path, "qwen", variant="helpful", p_benign=0.1, p_toxic=0.6, text=_payload),
        make_run(tmp_path, "smollm2", variant="none", p_benign=0.2, p_toxic=0.3),
        make_run(tmp_path, "smollm2", variant="helpful", p_benign=0.05, p_toxic=0.2),
        make_run(tmp_path, "smollm2", variant="helpful", p_benign=0.3, p_toxic=0.5, judge="classifier"),
    ]
    out = tmp_path / "report.html"
    write_report(load_runs(runs), out, reference="orbench-2024", resamples=500)
    watch = Watch(browser, "file://")
    page = watch.page
    page.goto(out.as_uri())
    page.wait_for_selector("#fig-scatter[data-drawn='1']", timeout=30_000)
    traces = page.locator("#fig-scatter .scatterlayer .trace")
    assert traces.count() == 3  # cells, ideal, published points
    assert traces.nth(0).locator("path.point").count() == 5  # one point per cell
    assert traces.nth(2).locator("path.point").count() == 32
    assert page.evaluate("document.getElementById('fig-scatter').data[0].text.length") == 5
    assert page.locator("#leaderboard tr.model-row").count() == 5
    labels = page.locator("#leaderboard tr.model-row td:first-child").all_inner_texts()
    assert "smollm2 · helpful · classifier" in labels and "qwen · none · keywords" in labels
    assert "arXiv 2405.20947" in page.inner_text("#reference")
    assert page.locator("#comparisons li").count() == 20
    assert "judged differently" in page.inner_text("body")
    watch.assert_clean()
    page.close()


class ViewerThread:
    """The viewer server on its own event loop in a background thread."""

    def __init__(self, data: ViewerData) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.app = build_app(data)
        self.runner, port = asyncio.run_coroutine_threadsafe(start(self.app), self.loop).result(30)
        self.url = f"http://127.0.0.1:{port}/"

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        self.loop.close()


@pytest.fixture
def viewer(tmp_path: Path) -> Iterator[tuple[ViewerThread, Path]]:
    runs = [
        make_run(tmp_path, "alpha", n_benign=60, p_benign=0.2, text=_payload, errors=2, reasoning=_payload),
        make_run(tmp_path, "beta", n_benign=60, p_benign=0.6, text=_payload),
    ]
    gold = tmp_path / "gold.csv"
    server = ViewerThread(ViewerData(load_runs(runs), GoldFile(gold)))
    try:
        yield server, gold
    finally:
        server.close()


def _reload(page: Any, action: Any) -> None:
    """Run ``action`` and wait until the table has been reloaded."""
    before = page.get_attribute("body", "data-loaded")
    action()
    page.wait_for_function("(b) => document.body.getAttribute('data-loaded') !== b", arg=before, timeout=10_000)


def test_viewer_filters_relabels_and_runs_no_payload(browser: Any, viewer: tuple[ViewerThread, Path]) -> None:
    server, gold = viewer
    watch = Watch(browser, server.url)
    page = watch.page
    page.goto(server.url)
    page.wait_for_selector("body[data-loaded]")
    rows = page.locator("#rows tbody tr")
    assert rows.count() == 50 and "of 160" in page.inner_text("#page")

    _reload(page, lambda: page.select_option("#f-model", "beta"))
    assert "of 80" in page.inner_text("#page")
    assert set(rows.locator("td:nth-child(1)").all_inner_texts()) == {"beta"}
    _reload(page, lambda: page.select_option("#f-label", "toxic"))
    assert rows.count() == 20 and set(rows.locator("td:nth-child(3)").all_inner_texts()) == {"toxic"}
    _reload(page, lambda: page.select_option("#f-label", ""))
    _reload(page, lambda: page.click("#next"))
    assert "51–80 of 80" in page.inner_text("#page")

    # the payload is displayed as text, never parsed as markup
    _reload(page, lambda: page.select_option("#f-verdict", "compliance"))
    first = rows.first
    assert XSS_SCRIPT in first.locator("td:nth-child(5)").inner_text()
    assert page.locator("#rows img").count() == 0 and page.locator("#rows script").count() == 0

    # a reasoning model's thinking sits collapsed beside the answer, as text
    _reload(page, lambda: page.select_option("#f-model", "alpha"))
    thought = rows.first.locator("td:nth-child(5) details.reasoning")
    assert thought.count() == 1 and not thought.evaluate("d => d.open")
    assert "reasoning (" in thought.locator("summary").inner_text()
    thought.locator("summary").click()
    assert XSS_SCRIPT in thought.inner_text()
    assert page.locator("#rows img").count() == 0 and page.locator("#rows script").count() == 0
    _reload(page, lambda: page.select_option("#f-model", "beta"))

    # relabel the first row as a full refusal: saved to the gold file, shown in the row, filterable
    prompt_id = first.get_attribute("data-row")
    first.locator("button[data-label='2_full_refusal']").click()
    page.wait_for_selector("#status:has-text('saved 2_full_refusal')")
    relabelled = page.locator(f"#rows tr[data-row='{prompt_id}']")
    assert "gold: 2_full_refusal" in relabelled.inner_text()
    assert "disagree" in (relabelled.get_attribute("class") or "")  # human vs the run's judge
    with gold.open(encoding="utf-8", newline="") as handle:
        saved = list(csv.DictReader(handle))
    assert len(saved) == 1 and saved[0]["final_label"] == "2_full_refusal" and saved[0]["model"] == "beta"
    assert XSS_SCRIPT in saved[0]["completion"]
    _reload(page, lambda: page.check("#f-gold"))
    assert rows.count() == 1
    _reload(page, lambda: page.uncheck("#f-gold"))
    _reload(page, lambda: page.select_option("#f-verdict", ""))
    _reload(page, lambda: page.check("#f-disagree"))
    assert rows.count() >= 1 and all("disagree" in (c or "") for c in [r.get_attribute("class") for r in rows.all()])
    _reload(page, lambda: page.uncheck("#f-disagree"))
    watch.assert_clean()
    watch.screenshot("viewer.png")
    page.close()


IMG_NAMES = ['<img src=x onerror="window.__pwned=1">.png', '" onload="window.__pwned=1" x=".png']


def _image_runs(tmp_path: Path) -> list[Path]:
    """A vision-language run whose image names and prompts carry markup, and a text-to-image run."""
    from image_servers import VisionServer, make_image
    from overrefusal import run

    bench_dir = tmp_path / "bench"
    bench_dir.mkdir()
    (bench_dir / IMG_NAMES[0]).write_bytes(make_image("red"))
    (bench_dir / IMG_NAMES[1]).write_bytes(make_image("green"))
    with (bench_dir / "vision.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["prompt", "label", "image"])
        writer.writerow([f"What is this? {XSS_SCRIPT}", "benign", IMG_NAMES[0]])
        writer.writerow([f"Describe it {XSS_IMG}", "benign", IMG_NAMES[1]])
        writer.writerow(["No picture here", "benign", ""])
    (bench_dir / "draw.csv").write_text("prompt,label\nA sunset,benign\nA knife attack,toxic\nA cat,benign\n")
    out = tmp_path / "runs"
    with VisionServer() as server:
        vlm = run(
            bench_dir / "vision.csv",
            "openai",
            backend_args={"model": "vlm", "base_url": server.url},
            judge="keywords",
            output_dir=out,
            progress=False,
        )
        t2i = run(
            bench_dir / "draw.csv",
            "openai-images",
            backend_args={"model": "img", "base_url": server.url},
            output_dir=out,
            progress=False,
        )
    assert vlm.run_dir is not None and t2i.run_dir is not None
    return [vlm.run_dir, t2i.run_dir]


def test_thumbnails_in_report_and_viewer_run_no_markup_from_image_names(browser: Any, tmp_path: Path) -> None:
    # in a thread of its own: Playwright's sync API keeps an event loop running in this one
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        vlm, t2i = pool.submit(_image_runs, tmp_path).result(120)
    for folder, expected in ((vlm, 2), (t2i, 2)):
        watch = Watch(browser, "file://")
        page = watch.page
        page.goto((folder / "report.html").as_uri())
        thumbs = page.locator("a.thumb img")
        assert thumbs.count() == expected
        for index in range(expected):
            img = thumbs.nth(index)
            assert img.evaluate("i => i.complete && i.naturalWidth > 0")  # drawn from the embedded data URI
            assert (img.get_attribute("src") or "").startswith("data:image/png;base64,")
        if folder == vlm:
            assert sorted(thumbs.evaluate_all("l => l.map(i => i.alt)")) == sorted(IMG_NAMES)
        assert page.locator("img:not(a.thumb img), script").count() == 0
        watch.assert_clean()
        page.close()

    server = ViewerThread(ViewerData(load_runs([vlm, t2i]), GoldFile(tmp_path / "gold.csv")))
    try:
        watch = Watch(browser, server.url)
        page = watch.page
        page.goto(server.url)
        page.wait_for_selector("body[data-loaded]")
        thumbs = page.locator("#rows a.thumb img")
        page.wait_for_function("() => [...document.querySelectorAll('#rows a.thumb img')].every(i => i.complete)")
        assert thumbs.count() == 4  # two prompt images, two generated ones
        for index in range(4):
            img = thumbs.nth(index)
            assert img.evaluate("i => i.naturalWidth > 0")  # served by the viewer from the run folder
            assert (img.get_attribute("src") or "").startswith("/api/image/")
        assert sorted(thumbs.evaluate_all("l => l.map(i => i.alt)")) == sorted([*IMG_NAMES, "generated", "generated"])
        assert page.locator("#rows img:not(a.thumb img), #rows script").count() == 0
        assert XSS_SCRIPT in page.locator("#rows").inner_text()
        # nothing but a run folder's images/<sha256>.<ext> is served
        name = next((vlm / "images").iterdir()).name
        assert page.request.get(server.url + f"api/image/0/{name}").status == 200
        for path in (
            f"api/image/1/{name}",  # another run's image
            "api/image/0/..%2Fsummary.json",
            "api/image/0/%2E%2E%2Fresponses.jsonl",
            f"api/image/7/{name}",
            "api/image/0/" + "0" * 64 + ".png",
            f"api/image/x/{name}",
        ):
            assert page.request.get(server.url + path).status == 404, path
        watch.assert_clean()
        watch.screenshot("viewer-images.png")
        page.close()
    finally:
        server.close()
