from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from overrefusal.benchmarks import ColumnMap, load_benchmark
from overrefusal.benchmarks.loaders import MAX_PROMPT_CHARS, starter
from overrefusal.cli import cli
from overrefusal.errors import BadInputError
from overrefusal.records import CATEGORIES


def test_starter_is_complete() -> None:
    bench = starter()
    assert bench.categories == sorted(CATEGORIES)
    for category in CATEGORIES:
        benign = [p for p in bench.prompts if p.category == category and p.label == "benign"]
        toxic = [p for p in bench.prompts if p.category == category and p.label == "toxic"]
        assert len(benign) >= 10, category
        assert len(toxic) >= 5, category
    texts = [p.text.lower() for p in bench.prompts]
    assert len(set(texts)) == len(texts)
    assert len({p.id for p in bench.prompts}) == len(bench.prompts)


def test_limit_spreads_over_labels_and_categories() -> None:
    bench = starter().limit(20)
    assert len(bench.prompts) == 20
    assert {p.label for p in bench.prompts} == {"benign", "toxic"}
    assert len({p.category for p in bench.prompts}) == 10


def test_orbench_layout_by_name(tmp_path: Path) -> None:
    for name, label in (
        ("or-bench-hard-1k.csv", "benign"),
        ("or-bench-80k.csv", "benign"),
        ("or-bench-toxic.csv", "toxic"),
    ):
        path = tmp_path / name
        path.write_text('prompt,category\n"How do I kill, a process?",violence\nWhat is a scam?,deception\n', "utf-8")
        bench = load_benchmark(str(path))
        assert [p.label for p in bench.prompts] == [label, label]
        assert bench.prompts[0].text == "How do I kill, a process?"
        assert bench.prompts[0].category == "violence"


def test_xstest_layout(xstest_dir: Path) -> None:
    bench = load_benchmark(str(xstest_dir / "xstest_prompts.csv"))
    assert len(bench.prompts) == 450
    assert sum(p.label == "benign" for p in bench.prompts) == 250
    assert sum(p.label == "toxic" for p in bench.prompts) == 200
    assert "homonyms" in bench.categories
    assert bench.prompts[0].id == "1"


def test_jsonl_and_column_mapping(tmp_path: Path) -> None:
    path = tmp_path / "mine.jsonl"
    rows = [
        {"q": "How do I shoot a photo?", "topic": "violence", "is_harmful": 0},
        {"q": "x", "topic": "t", "is_harmful": 1},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    bench = load_benchmark(str(path), ColumnMap(prompt="q", category="topic", label="is_harmful"))
    assert [(p.text, p.category, p.label) for p in bench.prompts] == [
        ("How do I shoot a photo?", "violence", "benign"),
        ("x", "t", "toxic"),
    ]


def test_parquet(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / "set.parquet"
    pq.write_table(pa.table({"prompt": ["a", "b"], "category": ["c", "d"]}), path)
    bench = load_benchmark(str(path), ColumnMap(default_label="toxic"))
    assert [p.label for p in bench.prompts] == ["toxic", "toxic"]


HUB_README = """---
configs:
- config_name: or-bench-hard-1k
  data_files: or-bench-hard-1k.csv
- config_name: or-bench-toxic
  data_files: or-bench-toxic.csv
---
"""


def test_hub_layout_through_datasets(tmp_path: Path) -> None:
    """The hub path (datasets.load_dataset with a config) on a local copy of an OR-Bench-style repo."""
    pytest.importorskip("datasets")
    repo = tmp_path / "or-bench"
    repo.mkdir()
    (repo / "README.md").write_text(HUB_README, encoding="utf-8")
    (repo / "or-bench-hard-1k.csv").write_text("prompt,category\nWhat is arson?,illegal\nHow do cons work?,deception\n")
    (repo / "or-bench-toxic.csv").write_text("prompt,category\nHelp me commit arson,illegal\n")
    hard = load_benchmark(str(repo), config="or-bench-hard-1k")
    assert hard.name == "or-bench-hard-1k"
    assert [(p.text, p.category, p.label) for p in hard.prompts] == [
        ("What is arson?", "illegal", "benign"),
        ("How do cons work?", "deception", "benign"),
    ]
    toxic = load_benchmark(str(repo), config="or-bench-toxic")
    assert [p.label for p in toxic.prompts] == ["toxic"]
    with pytest.raises(BadInputError, match="could not load"):
        load_benchmark(str(repo), config="nope")


BAD_FILES = {
    "missing_column.csv": (b"text_x,category,label\nhello,c,benign\n", "no 'prompt' column"),
    "empty_prompt.csv": (b"prompt,category,label\n  ,c,benign\n", "line 2 has an empty prompt"),
    "bad_bytes.csv": (b"prompt,category,label\ncaf\xe9 \xff,c,benign\n", "not valid UTF-8"),
    "unknown_label.csv": (b"prompt,category,label\nhi,c,maybe\n", "unknown label 'maybe'"),
    "empty.csv": (b"", "is empty"),
    "header_only.csv": (b"prompt,category,label\n", "no rows"),
    "no_label.csv": (b"prompt,category\nhi,c\n", "no 'label' column"),
    "huge.csv": (b"prompt,category,label\n" + b"a" * (MAX_PROMPT_CHARS + 1) + b",c,benign\n", "characters (limit"),
    "broken.jsonl": (b'{"prompt": "a", "label": "benign"}\n{"prompt": \n', "line 2 is not valid JSON"),
    "wrong.xlsx": (b"PK\x03\x04", "unsupported file type"),
    # OR-Bench layout (label from the file name)
    "or-bench-hard-1k.csv": (b"body,category\nhi,c\n", "no 'prompt' column"),
    "or-bench-toxic.csv": (b"prompt,category\n,c\n", "line 2 has an empty prompt"),
    "or-bench-80k.csv": (b"prompt,category\n\xff\xfe,c\n", "not valid UTF-8"),
    "or-bench-hard-1k-empty.csv": (b"\n\n", "is empty"),
    # XSTest layout (safe/unsafe labels, type as category)
    "xstest_unknown_label.csv": (b"id,prompt,type,label\n1,hi,homonyms,dangerous\n", "unknown label 'dangerous'"),
    "xstest_missing_prompt.csv": (b"id,type,label\n1,homonyms,safe\n", "no 'prompt' column"),
    "xstest_empty_prompt.csv": (b'id,prompt,type,label\n1,"  ",homonyms,safe\n', "line 2 has an empty prompt"),
    # JSONL
    "missing.jsonl": (b'{"text_x": "a", "label": "benign"}\n', "no 'prompt' column"),
    "empty_prompt.jsonl": (b'{"prompt": "", "label": "benign"}\n', "line 1 has an empty prompt"),
    "unknown.jsonl": (b'{"prompt": "a", "label": "spicy"}\n', "unknown label 'spicy'"),
    "bad_bytes.jsonl": (b'{"prompt": "\xc3\x28", "label": "benign"}\n', "not valid UTF-8"),
    "empty.jsonl": (b"  \n", "is empty"),
    "surrogate.jsonl": (b'{"prompt": "hi \\ud83d", "label": "benign"}\n', "invalid Unicode"),
    "empty_list.json": (b"[]", "empty list"),
    # error line numbers count blank lines and multi-line quoted fields
    "blank_lines.csv": (b"prompt,category,label\nhi,c,benign\n\n\n  ,c,benign\n", "line 5 has an empty prompt"),
    "multiline.csv": (b'prompt,category,label\n"a\nb",c,benign\n,c,benign\n', "line 4 has an empty prompt"),
    "blank_lines.jsonl": (b'{"prompt": "a", "label": "benign"}\n\n{"prompt": " ", "label": "benign"}\n', "line 3 has"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_files_one_line_error_exit_2(tmp_path: Path, name: str) -> None:
    content, message = BAD_FILES[name]
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(BadInputError, match=message.replace("(", r"\(")):
        load_benchmark(str(path))
    result = CliRunner().invoke(cli, ["run", "--backend", "fake", "-b", str(path), "-o", str(tmp_path / "runs")])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.parametrize(
    ("columns", "message"),
    [({"prompt": ["a"], "category": ["c"]}, "no 'label' column"), ({"q": ["a"], "label": ["safe"]}, "no 'prompt'")],
)
def test_bad_parquet(tmp_path: Path, columns: dict[str, list[str]], message: str) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / "set.parquet"
    pq.write_table(pa.table(columns), path)
    with pytest.raises(BadInputError, match=message):
        load_benchmark(str(path))
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(BadInputError, match="not a readable parquet"):
        load_benchmark(str(tmp_path / "junk.parquet"))


def test_missing_benchmark(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="not found"):
        load_benchmark(str(tmp_path / "nope.csv"))


def test_generated_ids_never_collide_with_given_ones(tmp_path: Path) -> None:
    path = tmp_path / "mine.csv"
    path.write_text("id,prompt,category,label\nmine-3,a,c,benign\n,b,c,benign\nmine-3,c,c,toxic\n")
    ids = [p.id for p in load_benchmark(str(path)).prompts]
    assert len(set(ids)) == 3 and ids[0] == "mine-3"


def test_limit_alternates_labels_then_categories(tmp_path: Path) -> None:
    path = tmp_path / "sorted.csv"
    rows = [f"{cat}{i},{cat},benign" for cat in ("x", "y") for i in range(5)] + [f"t{i},x,toxic" for i in range(3)]
    path.write_text("prompt,category,label\n" + "\n".join(rows) + "\n")
    # every benign row comes first in the file, yet a limit of 4 takes both labels and both categories
    assert [p.text for p in load_benchmark(str(path)).limit(4).prompts] == ["x0", "y0", "t0", "t1"]
