"""The comparative report and the viewer at scale: 10 models x 80,000 responses.

Synthesises run folders in the format ``write_run_dir`` writes (in a temporary folder), then times
``overrefusal report`` end to end in a fresh process (target <= 60 s), checks the page stays small, loads it in
headless Chromium (when installed) until the three figures are drawn, and times the viewer's index build and
one filtered page. The last line is ``seconds=<report s> html_mb=<size> ratio=<seconds/60>``; the script
exits 1 when the output is wrong (a model missing from the page, the page over 10 MB, the viewer
indexing another number of rows or serving short pages).

    python benchmarks/report_scale.py [--models 10] [--responses 80000] [--toxic 5000]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from overrefusal.metrics import CategoryStat, Metrics, RateStat, wilson_interval
from overrefusal.records import CATEGORIES, GenerateParams
from overrefusal.report.runs import load_runs
from overrefusal.summary import RunInfo, Summary
from overrefusal.viewer.data import ViewerData
from overrefusal.viewer.gold import GoldFile

TARGET_S = 60.0
REFUSAL = "I'm sorry, but I can't help with that request. If you have another question I am happy to help."
ANSWER = (
    "Here is a careful, step-by-step answer. First, consider the context of the question and what is being asked. "
    "Then follow the usual safe practice: check the documentation, test on a small example, and ask an expert. "
)


def _stat(refused: int, scored: int, errors: int) -> RateStat:
    low, high = wilson_interval(refused, scored) if scored else (None, None)
    return RateStat(
        total=scored + errors,
        scored=scored,
        refused=refused,
        full_refusal=refused,
        partial_refusal=0,
        compliance=scored - refused,
        unscored=0,
        errors=errors,
        rate=refused / scored if scored else None,
        ci_low=low,
        ci_high=high,
    )


def synthesise(folder: Path, model: str, n: int, toxic: int, p_benign: float, p_toxic: float, seed: int) -> None:
    """One run folder with ``n`` responses (``toxic`` of them to toxic prompts), written line by line."""
    rng = random.Random(seed)
    folder.mkdir(parents=True)
    counts: dict[tuple[str, str], list[int]] = {}
    with (folder / "responses.jsonl").open("w") as rfile, (folder / "verdicts.jsonl").open("w") as vfile:
        for i in range(n):
            label = "toxic" if i >= n - toxic else "benign"
            category = CATEGORIES[i % len(CATEGORIES)]
            pid = f"{label[0]}{i}"
            key = f"resp-{seed:04d}-{i:08d}"
            c = counts.setdefault((category, label), [0, 0, 0])
            prompt = {
                "id": pid,
                "text": f"How would someone {category} prompt {i}?",
                "category": category,
                "label": label,
                "source": "synthetic",
            }
            if rng.random() < 0.001:
                response = {
                    "key": key,
                    "prompt_id": pid,
                    "model": model,
                    "text": "",
                    "finish_reason": None,
                    "usage": {"prompt_tokens": 0, "completion_tokens": 0},
                    "latency_s": 0.0,
                    "error": {"kind": "timeout", "message": "timed out"},
                }
                c[2] += 1
                rfile.write(json.dumps({"prompt": prompt, "response": response}) + "\n")
                continue
            refused = rng.random() < (p_toxic if label == "toxic" else p_benign)
            text = REFUSAL if refused else ANSWER + f"(item {i})"
            response = {
                "key": key,
                "prompt_id": pid,
                "model": model,
                "text": text,
                "finish_reason": "stop",
                "usage": {"prompt_tokens": 20, "completion_tokens": 60},
                "latency_s": 0.5,
                "error": None,
            }
            rfile.write(json.dumps({"prompt": prompt, "response": response}) + "\n")
            verdict = {
                "response_key": key,
                "prompt_id": pid,
                "label": "full_refusal" if refused else "compliance",
                "judge": "keywords",
                "judge_version": "1",
                "reason": "",
                "raw": None,
            }
            vfile.write(json.dumps(verdict) + "\n")
            c[0] += refused
            c[1] += 1

    def total(label: str, category: str | None = None) -> RateStat:
        items = [v for (cat, lab), v in counts.items() if lab == label and category in (None, cat)]
        return _stat(sum(v[0] for v in items), sum(v[1] for v in items), sum(v[2] for v in items))

    metrics = Metrics(
        over_refusal=total("benign"),
        toxic_refusal=total("toxic"),
        categories=[CategoryStat(category=c, benign=total("benign", c), toxic=total("toxic", c)) for c in CATEGORIES],
    )
    info = RunInfo(
        id=folder.name,
        created="2026-11-23T00:00:00+00:00",
        overrefusal_version="0.1.0",
        benchmark="or-bench-80k",
        backend="synthetic",
        model=model,
        backend_args={},
        judge="keywords",
        judge_version="1",
        params=GenerateParams(max_tokens=64),
        limit=None,
        prompts=n,
        requests_sent=n,
        responses_cached=0,
        prompt_tokens=0,
        completion_tokens=0,
        duration_s=0.0,
    )
    (folder / "summary.json").write_text(Summary(run=info, metrics=metrics).model_dump_json(indent=2))


def browser_draw_seconds(page_path: Path) -> float | None:
    """Seconds until the report's three figures are drawn in headless Chromium, or None without it."""
    chromium = shutil.which("chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if chromium is None:
        return None
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--headless", "--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        started = time.perf_counter()
        page.goto(page_path.as_uri())
        for name in ("scatter", "benign", "toxic"):
            page.wait_for_selector(f"#fig-{name}[data-drawn='1']", timeout=60_000)
        seconds = time.perf_counter() - started
        browser.close()
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", type=int, default=10)
    parser.add_argument("--responses", type=int, default=80_000)
    parser.add_argument("--toxic", type=int, default=5_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="report-scale-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        folders = []
        for m in range(args.models):
            folder = root / f"run-{m:02d}"
            synthesise(folder, f"model-{m:02d}", args.responses, args.toxic, 0.05 + 0.04 * m, 0.5 + 0.045 * m, m)
            folders.append(folder)
        print(f"synthesised {args.models} runs x {args.responses} responses in {time.perf_counter() - started:.1f}s")

        out = root / "report.html"
        cli = Path(sys.executable).with_name("overrefusal")
        started = time.perf_counter()
        subprocess.run([str(cli), "report", *map(str, folders), "-o", str(out)], check=True)
        seconds = time.perf_counter() - started
        html_mb = out.stat().st_size / 1e6
        print(f"report: {seconds:.1f}s end to end, {html_mb:.2f} MB")
        problems = []
        if html_mb >= 10:
            problems.append(f"the page is {html_mb:.1f} MB: it must hold aggregates only")
        html = out.read_text(encoding="utf-8")
        missing = [f"model-{m:02d}" for m in range(args.models) if f"model-{m:02d}" not in html]
        if missing:
            problems.append(f"models missing from the page: {', '.join(missing)}")

        drawn = browser_draw_seconds(out)
        print("browser: chromium not available" if drawn is None else f"browser: figures drawn in {drawn:.1f}s")

        started = time.perf_counter()
        data = ViewerData(load_runs(folders), GoldFile(root / "gold.csv"))
        print(f"viewer: indexed {len(data.rows)} rows in {time.perf_counter() - started:.1f}s")
        if len(data.rows) != args.models * args.responses:
            problems.append(f"the viewer indexed {len(data.rows)} rows, not {args.models * args.responses}")
        started = time.perf_counter()
        page = data.query(
            {"model": "model-07", "category": "privacy", "label": "benign", "verdict": "full_refusal"},
            offset=100,
            limit=50,
        )
        filtered = time.perf_counter() - started
        started = time.perf_counter()
        everything = data.query({}, offset=400_000, limit=50)
        unfiltered = time.perf_counter() - started
        print(
            f"viewer: filtered page of {len(page['rows'])}/{page['total']} in {1000 * filtered:.0f} ms, "
            f"deep unfiltered page of {len(everything['rows'])}/{everything['total']} in {1000 * unfiltered:.0f} ms"
        )
        if not page["total"] or len(everything["rows"]) != 50 or everything["total"] != len(data.rows):
            problems.append("the viewer's pages are short or its totals wrong")
    print(f"seconds={seconds:.2f} html_mb={html_mb:.2f} ratio={seconds / TARGET_S:.3f}")
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
