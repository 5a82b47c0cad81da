"""Load prompts from the starter set, CSV / JSONL / parquet files, or the Hugging Face hub.

Recognised layouts:

* OR-Bench: ``prompt,category``; the file name says the label (``or-bench-80k`` and
  ``or-bench-hard-1k`` are benign, ``or-bench-toxic`` is toxic).
* XSTest: ``prompt,type,label`` with ``safe``/``unsafe`` labels; ``type`` is the category.
* MOSSBench (vision-language): ``information.json`` or the hub layout (see :mod:`.mossbench`).
* Generic: ``prompt`` plus optional ``category``, ``label``, ``id``, ``image`` and ``stimulus``
  columns (names configurable with :class:`ColumnMap`). An image is a path relative to the
  benchmark file or a ``data:`` URI; each one is checked (:mod:`.image_column`).

Every problem with a file raises :class:`BadInputError` with one line saying how to fix it.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from overrefusal.benchmarks import mossbench
from overrefusal.benchmarks.image_column import ImageReader
from overrefusal.errors import BadInputError, MissingDependencyError
from overrefusal.records import Label, Prompt

MAX_PROMPT_CHARS = 32_000
"""Longer prompts are rejected: they are almost always a broken file (a whole document in one cell)."""

_LABELS: dict[str, Label] = {
    "benign": "benign",
    "safe": "benign",
    "harmless": "benign",
    "0": "benign",
    "false": "benign",
    "toxic": "toxic",
    "unsafe": "toxic",
    "harmful": "toxic",
    "1": "toxic",
    "true": "toxic",
}

_HUB_LAYOUTS: dict[str, Label] = {
    "or-bench-80k": "benign",
    "or-bench-hard-1k": "benign",
    "or-bench-toxic": "toxic",
}


@dataclass(frozen=True)
class ColumnMap:
    """Which columns hold what; ``None`` means detect from the layout."""

    prompt: str | None = None
    category: str | None = None
    label: str | None = None
    id: str | None = None
    image: str | None = None
    stimulus: str | None = None
    default_label: Label | None = None
    """Label for every row when the file has no label column."""
    default_category: str = "uncategorized"


class Rows(list[dict[str, Any]]):
    """Rows read from a text file, with the line each row starts on (for error messages)."""

    def __init__(self, rows: Iterable[dict[str, Any]], lines: Iterable[int]) -> None:
        """Rows and their line numbers, in the same order."""
        super().__init__(rows)
        self.lines = list(lines)


@dataclass(frozen=True)
class Benchmark:
    """A named list of prompts."""

    name: str
    prompts: tuple[Prompt, ...]

    @property
    def categories(self) -> list[str]:
        """Categories present, sorted."""
        return sorted({p.category for p in self.prompts})

    def limit(self, n: int | None) -> Benchmark:
        """At most ``n`` prompts, taken in turn from each label and, within a label, from each category.

        So a small limit still covers both labels and many categories; the file order is kept.
        """
        if n is None or n >= len(self.prompts):
            return self
        by_label: dict[str, dict[str, list[Prompt]]] = {}
        for prompt in self.prompts:
            by_label.setdefault(prompt.label, {}).setdefault(prompt.category, []).append(prompt)
        streams = [_round_robin(list(categories.values())) for categories in by_label.values()]
        picked: list[Prompt] = []
        while len(picked) < n and streams:
            for stream in list(streams):
                if len(picked) >= n:
                    break
                nxt = next(stream, None)
                if nxt is None:
                    streams.remove(stream)
                else:
                    picked.append(nxt)
        order = {id(p): i for i, p in enumerate(self.prompts)}
        return Benchmark(self.name, tuple(sorted(picked, key=lambda p: order[id(p)])))


def _round_robin(queues: Sequence[Sequence[Prompt]]) -> Iterator[Prompt]:
    """The first item of each queue, then the second of each, and so on."""
    for index in range(max(len(q) for q in queues)):
        for queue in queues:
            if index < len(queue):
                yield queue[index]


def starter() -> Benchmark:
    """The built-in starter benchmark shipped with the package."""
    text = files("overrefusal.benchmarks").joinpath("data/starter.csv").read_text(encoding="utf-8")
    rows = _read_csv(Path("starter.csv"), text, ",")
    return Benchmark("starter", _to_prompts(rows, "starter", ColumnMap(), source="starter"))


def load_benchmark(
    source: str,
    columns: ColumnMap | None = None,
    *,
    config: str | None = None,
    split: str = "train",
) -> Benchmark:
    """Load a benchmark by name, file path or hub dataset name.

    Args:
        source: ``starter``, a path to a .csv / .jsonl / .json / .parquet file, a
            Hugging Face dataset name such as ``bench-llm/or-bench`` (needs ``config``),
            or a local folder holding a copy of such a dataset.
        columns: column mapping for files in other layouts.
        config: hub dataset configuration (e.g. ``or-bench-hard-1k``).
        split: hub dataset split.
    """
    columns = columns or ColumnMap()
    if source == "starter":
        return starter()
    path = Path(source).expanduser()
    if path.exists():
        if path.is_dir():
            # a local copy of a hub dataset repository (README with configs + data files)
            return _load_hub(str(path), columns, config=config, split=split)
        rows = _read_rows(path)
        prompts = _to_prompts(rows, path.stem, columns, source=path.name, base=path.parent)
        # MOSSBench's release names its file information.json: the benchmark is called by its name
        moss = path.name == "information.json" and mossbench.looks_like(rows[0])
        return Benchmark("mossbench" if moss else path.stem, prompts)
    if re.fullmatch(r"[\w.-]+/[\w.-]+", source) and not path.suffix:
        return _load_hub(source, columns, config=config, split=split)
    raise BadInputError(f"benchmark {source!r} not found: give 'starter', an existing file, or a hub dataset name")


def _read_rows(path: Path) -> list[dict[str, Any]]:
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return _read_parquet(path)
    raw = path.read_bytes()
    if not raw.strip():
        raise BadInputError(f"{path} is empty: it needs a header row and at least one prompt")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadInputError(
            f"{path} is not valid UTF-8 (bad byte at offset {exc.start}): re-save it as UTF-8"
        ) from None
    if suffix in (".jsonl", ".ndjson"):
        return _read_jsonl(path, text)
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BadInputError(f"{path} is not valid JSON (line {exc.lineno}): fix or convert it to JSONL") from None
        if mossbench.is_information_json(data):
            return list(data.values())
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise BadInputError(f"{path} must hold a JSON list of objects, one per prompt")
        if not data:
            raise BadInputError(f"{path} holds an empty list: add at least one prompt object")
        return data
    if suffix in (".csv", ".tsv", ".txt", ""):
        return _read_csv(path, text, "\t" if suffix == ".tsv" else ",")
    raise BadInputError(f"{path}: unsupported file type {suffix!r}; use .csv, .tsv, .jsonl, .json or .parquet")


def _read_csv(path: Path, text: str, delimiter: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    lines: list[int] = []
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
        for row in reader:
            if None in row:  # more fields than the header names
                raise BadInputError(
                    f"{path} line {reader.line_num} has more fields than its header: quote a prompt holding "
                    'a comma ("like, this") or fix the header'
                )
            values = [v for v in row.values() if isinstance(v, str)]
            if any(v.strip() for v in values):
                rows.append(row)
                # the line the row starts on: it ends on line_num, and quoted fields may span lines
                lines.append(reader.line_num - sum(v.count("\n") for v in values))
    except csv.Error as exc:
        raise BadInputError(f"{path} is not valid CSV ({exc}): check its quoting") from None
    if not reader.fieldnames:
        raise BadInputError(f"{path} has no header row: add one naming the columns (e.g. prompt,category,label)")
    if not rows:
        raise BadInputError(f"{path} has a header but no rows: add at least one prompt")
    return Rows(rows, lines)


def _read_jsonl(path: Path, text: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    lines: list[int] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        lines.append(number)
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise BadInputError(f"{path} line {number} is not valid JSON: fix that line") from None
        if not isinstance(row, dict):
            raise BadInputError(f"{path} line {number} is not a JSON object: write one object per line")
        rows.append(row)
    if not rows:
        raise BadInputError(f"{path} has no records: add at least one prompt")
    return Rows(rows, lines)


def _read_parquet(path: Path) -> list[dict[str, Any]]:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise MissingDependencyError("reading parquet files", "parquet", ["pyarrow"]) from exc
    try:
        table = pq.read_table(path)
    except Exception as exc:
        raise BadInputError(f"{path} is not a readable parquet file ({exc}): re-export it") from None
    rows: list[dict[str, Any]] = table.to_pylist()
    if not rows:
        raise BadInputError(f"{path} has no rows: add at least one prompt")
    return rows


def _load_hub(name: str, columns: ColumnMap, *, config: str | None, split: str) -> Benchmark:
    try:
        import datasets
    except ImportError as exc:
        raise MissingDependencyError(f"loading {name} from the Hugging Face hub", "hub", ["datasets"]) from exc
    try:
        data = datasets.load_dataset(name, config, split=split)
        for column, feature in data.features.items():
            if isinstance(feature, datasets.Image):  # the original bytes, not a re-encoding: their hash is kept
                data = data.cast_column(column, datasets.Image(decode=False))
    except Exception as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BadInputError(
            f"could not load {name} (config {config}, split {split}): {detail}; check the name and --hub-config"
        ) from None
    rows = [dict(r) for r in data]
    if not rows:
        raise BadInputError(f"{name} (config {config}, split {split}) has no rows: pick another config or split")
    layout_name = config or name.rsplit("/", 1)[-1]
    local = Path(name)
    prompts = _to_prompts(
        rows, layout_name, columns, source=f"{name}:{config or ''}", base=local if local.is_dir() else None
    )
    return Benchmark(layout_name, prompts)


def _pick(available: Iterable[str], wanted: str | None, candidates: tuple[str, ...]) -> str | None:
    names = list(available)
    if wanted is not None:
        return wanted if wanted in names else None
    lowered = {n.lower().strip(): n for n in names}
    for candidate in candidates:
        if candidate in lowered:
            return lowered[candidate]
    return None


def _layout_label(stem: str) -> Label | None:
    key = stem.lower()
    for layout, label in _HUB_LAYOUTS.items():
        if key.startswith(layout):
            return label
    return None


def _to_prompts(
    rows: Sequence[Mapping[str, Any]], stem: str, columns: ColumnMap, *, source: str, base: Path | None = None
) -> tuple[Prompt, ...]:
    bases = [base] if base is not None else []
    mossbench_label: Label | None = None
    if mossbench.looks_like(rows[0]):
        lines = rows.lines if isinstance(rows, Rows) else range(1, len(rows) + 1)
        rows = Rows(mossbench.normalise(rows), lines) if isinstance(rows, Rows) else mossbench.normalise(rows)
        mossbench_label = mossbench.label_for(f"{stem} {source}")
        if base is not None:
            bases.append(base.parent)  # the GitHub release: data/images_information/ names images/42.png in data/
    header = list(rows[0].keys())
    prompt_col = _pick(header, columns.prompt, ("prompt", "question", "text", "input", "instruction"))
    if prompt_col is None:
        wanted = columns.prompt or "prompt"
        raise BadInputError(
            f"{source} has no {wanted!r} column (columns: {', '.join(map(str, header))}): "
            "rename it or pass --prompt-column"
        )
    category_col = _pick(header, columns.category, ("category", "type", "categories"))
    if columns.category is not None and category_col is None:
        raise BadInputError(f"{source} has no {columns.category!r} column: fix --category-column")
    label_col = _pick(header, columns.label, ("label", "expected", "class"))
    if columns.label is not None and label_col is None:
        raise BadInputError(f"{source} has no {columns.label!r} column: fix --label-column")
    id_col = _pick(header, columns.id, ("id",))
    image_col = _pick(header, columns.image, ("image", "image_path", "img"))
    if columns.image is not None and image_col is None:
        raise BadInputError(f"{source} has no {columns.image!r} column: fix --image-column")
    stimulus_col = _pick(header, columns.stimulus, ("stimulus", "stimulus_type"))
    if columns.stimulus is not None and stimulus_col is None:
        raise BadInputError(f"{source} has no {columns.stimulus!r} column: fix --stimulus-column")
    images = ImageReader(bases or [Path.cwd()])
    fixed_label = columns.default_label or _layout_label(stem) or mossbench_label
    if label_col is None and fixed_label is None:
        raise BadInputError(
            f"{source} has no 'label' column: add one (benign/toxic or safe/unsafe) or pass --label benign|toxic"
        )

    prompts: list[Prompt] = []
    seen_ids: set[str] = set()
    numbers = rows.lines if isinstance(rows, Rows) else range(1, len(rows) + 1)
    given_ids = {str(row.get(id_col) or "").strip() for row in rows} if id_col else set()
    for number, row in zip(numbers, rows, strict=True):
        where = f"{source} {'line' if isinstance(rows, Rows) else 'row'} {number}"
        text = row.get(prompt_col)
        if text is None or not str(text).strip():
            raise BadInputError(f"{where} has an empty prompt: fill it in or delete the row")
        text = str(text).strip()
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise BadInputError(
                f"{where} has a prompt with invalid Unicode (a lone surrogate escape such as \\ud83d): fix the text"
            ) from None
        if len(text) > MAX_PROMPT_CHARS:
            raise BadInputError(
                f"{where} has a prompt of {len(text):,} characters (limit {MAX_PROMPT_CHARS:,}): "
                "check the file's quoting or shorten it"
            )
        label: Label
        raw_label = row.get(label_col) if label_col is not None else None
        if raw_label is not None and str(raw_label).strip():
            raw = str(raw_label).strip().lower()
            if raw not in _LABELS:
                raise BadInputError(f"{where} has unknown label {raw_label!r}: use benign/toxic (or safe/unsafe)")
            label = _LABELS[raw]
        elif fixed_label is not None:
            label = fixed_label
        else:
            raise BadInputError(f"{where} has an empty label: use benign/toxic (or safe/unsafe)")
        category = str(row.get(category_col) or "").strip() if category_col else ""
        prompt_id = str(row.get(id_col) or "").strip() if id_col else ""
        if not prompt_id or prompt_id in seen_ids:
            # a generated id never takes an id the file gives to another row
            prompt_id, suffix = f"{stem}-{number}", 1
            while prompt_id in seen_ids or prompt_id in given_ids:
                suffix += 1
                prompt_id = f"{stem}-{number}-{suffix}"
        seen_ids.add(prompt_id)
        image = images.read(row.get(image_col), where) if image_col else None
        stimulus = str(row.get(stimulus_col) or "").strip() if stimulus_col else ""
        prompts.append(
            Prompt(
                id=prompt_id,
                text=text,
                category=category or columns.default_category,
                label=label,
                source=source,
                image=image,
                stimulus=stimulus,
            )
        )
    return tuple(prompts)
