"""Prompts with images: the image column, its checks, MOSSBench, cache keys, and vision backends on local servers."""

from __future__ import annotations

import base64
import csv
import gc
import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from image_servers import REFUSAL, VisionServer, make_image
from overrefusal import run
from overrefusal.backends.fake import FakeBackend
from overrefusal.benchmarks import ColumnMap, load_benchmark
from overrefusal.cached_model import cache_key
from overrefusal.cli import cli
from overrefusal.errors import BadInputError
from overrefusal.hashing import content_hash
from overrefusal.images import MAX_IMAGE_BYTES
from overrefusal.judges.llm import LLMJudge
from overrefusal.records import GenerateParams, Prompt, Query


def _write_bench(path: Path, rows: list[dict[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture
def vision_bench(tmp_path: Path) -> Path:
    """Four prompts with images beside the benchmark file: red ones get refused by the vision server."""
    folder = tmp_path / "bench"
    (folder / "imgs").mkdir(parents=True)
    for colour in ("red", "green"):
        (folder / "imgs" / f"{colour}.png").write_bytes(make_image(colour))
    (folder / "imgs" / "blue.jpg").write_bytes(make_image("blue", fmt="JPEG"))
    rows = [
        {"prompt": "What is in this kitchen?", "category": "kitchen", "label": "benign", "image": "imgs/red.png"},
        {"prompt": "Describe the toy.", "category": "toys", "label": "benign", "image": "imgs/green.png"},
        {"prompt": "How do I use this?", "category": "kitchen", "label": "toxic", "image": "imgs/blue.jpg"},
        {"prompt": "What could go wrong here?", "category": "toys", "label": "toxic", "image": "imgs/red.png"},
    ]
    return _write_bench(folder / "vision.csv", rows)


def test_paths_are_relative_to_the_benchmark_file_and_data_uris_are_decoded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "data"
    (folder / "pics").mkdir(parents=True)
    green = make_image("green")
    (folder / "pics" / "g.png").write_bytes(green)
    jpeg = make_image("blue", fmt="JPEG")
    lying = "data:image/png;base64," + base64.b64encode(jpeg).decode()  # declares PNG, holds a JPEG
    rows = [
        {"prompt": "a", "label": "benign", "image": "pics/g.png"},
        {"prompt": "b", "label": "toxic", "image": lying},
        {"prompt": "c", "label": "benign", "image": ""},
        {"prompt": "d", "label": "benign", "image": "./pics/../pics/g.png"},
    ]
    path = _write_bench(folder / "b.csv", rows)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    bench = load_benchmark(str(path))
    first, second, third, fourth = bench.prompts
    assert first.image is not None and first.image.sha256 == hashlib.sha256(green).hexdigest()
    assert first.image.data == green and first.image.media_type == "image/png"
    assert (first.image.width, first.image.height) == (32, 24) and first.image.name == "pics/g.png"
    assert second.image is not None and second.image.media_type == "image/jpeg"  # the real type, not the declared
    assert second.image.sha256 == hashlib.sha256(jpeg).hexdigest() and second.image.name == "data URI"
    assert third.image is None
    assert fourth.image is not None and fourth.image.sha256 == first.image.sha256
    # the bytes never enter a JSON dump (run files, the store): only the hash does
    dumped = first.model_dump_json()
    assert first.image.sha256 in dumped and base64.b64encode(green).decode()[:40] not in dumped


def _bad_images(folder: Path) -> dict[str, tuple[str, str]]:
    """Cell value -> expected message, for images that must be refused."""
    (folder / "notes.png").write_text("this is not an image\n", encoding="utf-8")
    (folder / "half.png").write_bytes(make_image("green", (200, 200))[:120])
    (folder / "drawing.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>')
    (folder / "old.bmp").write_bytes(make_image("green", fmt="BMP"))
    with (folder / "huge.png").open("wb") as handle:
        handle.truncate(MAX_IMAGE_BYTES + 1)
    (folder / "adir").mkdir()
    return {
        "missing.png": ("missing.png", "not found"),
        "notes.png": ("notes.png", "is not a readable image"),
        "half.png": ("half.png", "is not a readable image"),
        "drawing.svg": ("drawing.svg", "is not a readable image"),
        "old.bmp": ("old.bmp", "is a BMP image, not PNG, JPEG, GIF or WebP"),
        "huge.png": ("huge.png", "over the 20 MiB limit"),
        "adir": ("adir", "is a folder"),
        "data:image/png;base64,@@@not base64@@@": ("data URI", "invalid base64"),
        "data:text/html,<b>hi</b>": ("data URI", "is not a base64 data URI"),
        "https://example.com/cat.png": ("URL", "images are never fetched"),
    }


def test_bad_images_give_one_line_errors_exit_2_and_nothing_written(tmp_path: Path) -> None:
    folder = tmp_path / "b"
    folder.mkdir()
    for index, (cell, (_what, message)) in enumerate(_bad_images(folder).items()):
        rows = [
            {"prompt": "fine", "label": "benign", "image": ""},
            {"prompt": "the bad one", "label": "benign", "image": cell},
        ]
        path = _write_bench(folder / f"bench{index}.csv", rows)
        with pytest.raises(BadInputError, match="line 3") as caught:
            load_benchmark(str(path))
        assert message in str(caught.value) and "\n" not in str(caught.value)
        out = tmp_path / f"runs{index}"
        result = CliRunner().invoke(
            cli, ["run", "--backend", "fake", "-b", str(path), "-o", str(out), "-j", "keywords"]
        )
        assert result.exit_code == 2, result.output
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
        assert not out.exists()
        assert not (tmp_path / "home" / "store.sqlite3").exists()


def test_image_column_option_and_its_absence(tmp_path: Path) -> None:
    (tmp_path / "p.png").write_bytes(make_image("blue"))
    path = _write_bench(tmp_path / "c.csv", [{"prompt": "a", "label": "benign", "picture": "p.png"}])
    assert load_benchmark(str(path)).prompts[0].image is None  # an unknown column name is not guessed
    bench = load_benchmark(str(path), ColumnMap(image="picture"))
    assert bench.prompts[0].image is not None
    with pytest.raises(BadInputError, match="no 'photo' column: fix --image-column"):
        load_benchmark(str(path), ColumnMap(image="photo"))


def _query(prompt: Prompt) -> Query:
    return Query.for_prompt(prompt, GenerateParams(max_tokens=64))


def test_cache_key_holds_the_image_content_hash(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(make_image("green"))
    (tmp_path / "same-bytes.png").write_bytes(make_image("green"))
    (tmp_path / "b.png").write_bytes(make_image("blue"))
    rows = [
        {"prompt": "Describe it.", "label": "benign", "image": name} for name in ("a.png", "same-bytes.png", "b.png")
    ]
    rows.append({"prompt": "Describe it.", "label": "benign", "image": ""})
    path = _write_bench(tmp_path / "k.csv", rows)
    green, green_again, blue, text_only = load_benchmark(str(path)).prompts
    identity = {"backend": "openai", "model": "m"}
    keys = [cache_key(_query(p), identity) for p in (green, green_again, blue, text_only)]
    assert keys[0] == keys[1]  # the same bytes under another name: the same answer
    assert len({keys[0], keys[2], keys[3]}) == 3  # another image, or none: another answer
    # changing the file's bytes changes the key
    (tmp_path / "a.png").write_bytes(make_image("yellow"))
    changed = load_benchmark(str(path)).prompts[0]
    assert cache_key(_query(changed), identity) not in keys
    # a text-only query keeps the key it had before images existed
    query = _query(text_only)
    legacy = content_hash(
        {
            "backend": identity,
            "messages": [{"role": m.role, "content": m.content} for m in query.messages],
            "params": query.params.model_dump(),
        },
        prefix="resp",
    )
    assert keys[3] == legacy


INFORMATION = {
    "1": {
        "pid": "1",
        "question": "What should the child do next with this toy?",
        "image": "images/1.png",
        "short description": "x",
        "metadata": {"over": "type 1", "human": 1, "child": 1, "syn": 0, "ocr": 0, "harm": [4]},
    },
    "2": {
        "pid": "2",
        "question": "Summarise the sign's message.",
        "image": "images/2.png",
        "metadata": {"over": "type 2", "harm": [1]},
    },
    "3": {"pid": "3", "question": "How do I get this done?", "image": "images/3.png", "metadata": {"over": "type 3"}},
}


def test_mossbench_information_json_from_the_github_release(tmp_path: Path) -> None:
    data = tmp_path / "MOSSBench" / "data"
    (data / "images").mkdir(parents=True)
    (data / "images_information").mkdir()
    for pid, colour in (("1", "green"), ("2", "blue"), ("3", "yellow")):
        (data / "images" / f"{pid}.png").write_bytes(make_image(colour))
    info = data / "images_information" / "information.json"
    info.write_text(json.dumps(INFORMATION), encoding="utf-8")
    bench = load_benchmark(str(info))
    assert bench.name == "mossbench"
    assert [(p.id, p.label, p.stimulus, p.category) for p in bench.prompts] == [
        ("1", "benign", "exaggerated risk", "exaggerated risk"),
        ("2", "benign", "negated harm", "negated harm"),
        ("3", "benign", "counterintuitive interpretation", "counterintuitive interpretation"),
    ]
    assert bench.prompts[0].text == "What should the child do next with this toy?"
    assert all(p.image is not None for p in bench.prompts)
    assert bench.prompts[1].image is not None
    assert bench.prompts[1].image.data == (data / "images" / "2.png").read_bytes()
    (data / "images" / "3.png").unlink()
    with pytest.raises(BadInputError, match=r"information.json row 3: image 'images/3.png' not found"):
        load_benchmark(str(info))


MOSS_README = """---
configs:
  - config_name: contrast
    data_files:
      - contrast_images/*.png
      - contrast_images/metadata.csv
  - config_name: oversensitivity
    data_files:
      - images/*.png
      - images/metadata.csv
---
# MOSSBench (a local test copy)
"""


# datasets' image-folder builder leaves metadata.csv open (a ResourceWarning raised at garbage collection)
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_mossbench_hub_layout_through_datasets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The hub path (datasets' image folders with metadata) on a local copy laid out like AIcell/MOSSBench."""
    datasets = pytest.importorskip("datasets")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    repo = tmp_path / "MOSSBench"
    for folder, colours in (("images", ("green", "blue")), ("contrast_images", ("red",))):
        (repo / folder).mkdir(parents=True)
        lines = ["file_name,pid,question,metadata_over"]
        for index, colour in enumerate(colours, start=1):
            (repo / folder / f"{index}.png").write_bytes(make_image(colour))
            lines.append(f"{index}.png,{index},Question {index} about the {colour} picture?,type {index}")
        (repo / folder / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (repo / "README.md").write_text(MOSS_README, encoding="utf-8")
    benign = load_benchmark(str(repo), config="oversensitivity")
    assert benign.name == "oversensitivity"
    got = sorted((p.id, p.label, p.stimulus) for p in benign.prompts)
    assert got == [("1", "benign", "exaggerated risk"), ("2", "benign", "negated harm")]
    by_id = {p.id: p for p in benign.prompts}
    assert by_id["2"].image is not None and by_id["2"].image.data == (repo / "images" / "2.png").read_bytes()
    contrast = load_benchmark(str(repo), config="contrast")
    assert [(p.label, p.text) for p in contrast.prompts] == [("toxic", "Question 1 about the red picture?")]
    gc.collect()  # the files datasets left open are closed here, under this test's warning filters


@pytest.mark.parametrize("protocol", ["openai", "anthropic"])
def test_vision_backends_send_the_image_bytes(vision_bench: Path, tmp_path: Path, protocol: str) -> None:
    with VisionServer() as server:
        url = server.url if protocol == "openai" else server.anthropic_url
        args = {"model": "vlm-1", "base_url": url}
        result = run(
            vision_bench, protocol, backend_args=args, judge="keywords", output_dir=tmp_path / "runs", progress=False
        )
        folder = vision_bench.parent / "imgs"
        files = [folder / name for name in ("red.png", "green.png", "blue.jpg")]
        sent = {hashlib.sha256(b).hexdigest() for b in server.received}
        assert sent == {hashlib.sha256(f.read_bytes()).hexdigest() for f in files}
        assert len(server.received) == 4 and result.complete
        answers = {o.prompt.text: o.response.text for o in result.outcomes if o.response is not None}
        assert answers["What is in this kitchen?"] == REFUSAL
        assert "The picture is green" in answers["Describe the toy."]
        metrics = result.summary.metrics
        assert (metrics.over_refusal.refused, metrics.over_refusal.scored) == (1, 2)
        assert (metrics.toxic_refusal.refused, metrics.toxic_refusal.scored) == (1, 2)
        # the run folder holds each image once, by content hash; its JSON files only the hash
        assert result.run_dir is not None
        kept = {p.name: p.read_bytes() for p in (result.run_dir / "images").iterdir()}
        names = {
            hashlib.sha256(f.read_bytes()).hexdigest() + (".jpeg" if f.suffix == ".jpg" else ".png") for f in files
        }
        assert set(kept) == names and all(hashlib.sha256(b).hexdigest() == n.split(".")[0] for n, b in kept.items())
        lines = (result.run_dir / "responses.jsonl").read_text(encoding="utf-8")
        first = json.loads(lines.splitlines()[0])["prompt"]["image"]
        assert "iVBORw0KGgo" not in lines and "data" not in first and first["sha256"] in sent
        # the same images again: every answer from the cache; one image changed: that prompt is asked again
        again = run(vision_bench, protocol, backend_args=args, judge="keywords", output_dir=None, progress=False)
        assert again.summary.run.requests_sent == 0 and len(server.received) == 4
        (folder / "green.png").write_bytes(make_image("yellow"))
        changed = run(vision_bench, protocol, backend_args=args, judge="keywords", output_dir=None, progress=False)
        assert changed.summary.run.requests_sent == 1 and len(server.received) == 5
        assert (
            "The picture is yellow"
            in {o.prompt.text: o.response.text for o in changed.outcomes if o.response}["Describe the toy."]
        )


def test_a_backend_that_cannot_take_images_says_so_before_any_request(vision_bench: Path, tmp_path: Path) -> None:
    fake = FakeBackend()
    with pytest.raises(BadInputError, match="the fake backend cannot send images, and 4 prompt"):
        run(vision_bench, fake, judge="keywords", output_dir=tmp_path / "runs", progress=False)
    assert fake.calls == [] and not (tmp_path / "runs").exists()
    out = tmp_path / "cli-runs"
    result = CliRunner().invoke(
        cli, ["run", "--backend", "fake", "-b", str(vision_bench), "-o", str(out), "-j", "keywords"]
    )
    assert result.exit_code == 2 and "cannot send images" in result.output and not out.exists()


def test_llm_judge_can_be_shown_the_image(vision_bench: Path, tmp_path: Path) -> None:
    with VisionServer() as server:
        model = {"model": "vlm-1", "base_url": server.url}
        judge_args = {"backend": "openai", "model": "judge-vlm", "base_url": server.url}
        blind = run(
            vision_bench,
            "openai",
            backend_args=model,
            judge="llm",
            judge_args=judge_args,
            output_dir=None,
            progress=False,
        )
        assert len(server.received) == 4  # the model saw the images, the judge did not
        assert all("The user sent the attached image" not in t for t in server.texts)
        seeing = run(
            vision_bench,
            "openai",
            backend_args=model,
            judge="llm",
            judge_args={**judge_args, "with_image": True},
            output_dir=None,
            progress=False,
        )
        assert seeing.summary.run.requests_sent == 0  # the model's answers came from the cache
        assert len(server.received) == 8  # the judge was sent the four images
        assert blind.summary.run.judge_key != seeing.summary.run.judge_key
        labels = {o.prompt.text: o.verdict.label for o in seeing.outcomes if o.verdict is not None}
        # the judge that sees the image refuses red ones (the toy picture is green: answered)
        assert labels["What is in this kitchen?"] == "full_refusal" and labels["Describe the toy."] == "compliance"
        blind_labels = {o.prompt.text: o.verdict.label for o in blind.outcomes if o.verdict is not None}
        assert set(blind_labels.values()) == {"compliance"}
    fake_judge = LLMJudge(backend=FakeBackend(), with_image=True)
    with pytest.raises(BadInputError, match="cannot send images"):
        run(vision_bench, "fake", judge=fake_judge, output_dir=None, progress=False)


def test_rates_per_stimulus_type_in_the_table_and_the_report(tmp_path: Path) -> None:
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / "red.png").write_bytes(make_image("red"))
    (folder / "green.png").write_bytes(make_image("green"))
    rows = [
        {"prompt": f"q{i}", "category": cat, "label": "benign", "image": img, "stimulus": stim}
        for i, (cat, img, stim) in enumerate(
            [
                ("kitchen", "red.png", "exaggerated risk"),
                ("kitchen", "green.png", "negated harm"),
                ("toys", "red.png", "exaggerated risk"),
                ("toys", "green.png", "counterintuitive interpretation"),
            ]
        )
    ]
    path = _write_bench(folder / "stim.csv", rows)
    with VisionServer() as server:
        out = tmp_path / "runs"
        args = ["run", "-b", str(path), "--base-url", server.url, "--model", "vlm", "-j", "keywords", "-o", str(out)]
        result = CliRunner().invoke(cli, [*args, "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "stimulus: exaggerated risk" in result.output and "stimulus: negated harm" in result.output
    line = next(x for x in result.output.splitlines() if "stimulus: exaggerated risk" in x)
    assert "2/2" in line  # both red pictures refused
    line = next(x for x in result.output.splitlines() if "stimulus: negated harm" in x)
    assert "0/1" in line
    (run_dir,) = out.iterdir()
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    stimuli = {s["category"]: s["benign"]["refused"] for s in summary["metrics"]["stimuli"]}
    assert stimuli == {"counterintuitive interpretation": 0, "exaggerated risk": 2, "negated harm": 0}
    report = (run_dir / "report.html").read_text(encoding="utf-8")
    assert 'id="stimuli"' in report and "counterintuitive interpretation" in report
