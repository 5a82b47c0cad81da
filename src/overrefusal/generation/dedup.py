"""``generate dedup``: exact and near-duplicate removal, within the set and against exclusion sets; diversity report.

Both pools (benign and toxic) are processed in the stable order the moderation stage wrote them:

1. exact duplicates (same normalised text) are dropped, keeping the first;
2. prompts whose nearest exclusion-set prompt (e.g. a public benchmark) has cosine >= threshold are dropped;
3. near-duplicates within the pool are dropped greedily, keep-first (:mod:`~overrefusal.generation.neardup`).

Embeddings are all-MiniLM-L6-v2 (:class:`overrefusal.embeddings.Embedder`). No model calls.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import numpy as np

from overrefusal.benchmarks import ColumnMap, load_benchmark
from overrefusal.embeddings import DIM, MODEL_ID, Embedder
from overrefusal.generation import diversity
from overrefusal.generation.checks import Check, category_yield
from overrefusal.generation.common import Stage, funnel
from overrefusal.generation.copies import EXAMPLE_TEXTS
from overrefusal.generation.moderate import KIND as MODERATION_KIND
from overrefusal.generation.neardup import Matrix, near_duplicates, nearest
from overrefusal.generation.parsing import normalise
from overrefusal.progress import Bar

KIND = "dedup"
POOLS = ("benign", "toxic")
EMBED_BATCH = 256
"""Texts per ONNX call: larger batches of length-sorted short prompts embed faster on CPU."""


ENCODE_CHUNK = 4096


def encode(embedder: Embedder, texts: list[str], description: str, progress: bool) -> Matrix:
    """Embed ``texts`` in chunks, advancing a progress bar per text."""
    out = np.zeros((len(texts), DIM), dtype=np.float32)
    with Bar(description, len(texts), enabled=progress) as bar:
        for start in range(0, len(texts), ENCODE_CHUNK):
            chunk = texts[start : start + ENCODE_CHUNK]
            out[start : start + len(chunk)] = embedder.encode(chunk)
            for _ in chunk:
                bar.advance()
    return out


def dedup_texts(
    texts: list[str],
    threshold: float,
    embedder: Embedder,
    exclude: list[str] | None = None,
    block_size: int = 1024,
    progress: bool = False,
    exclude_embeddings: Matrix | None = None,
    timings: dict[str, float] | None = None,
) -> tuple[list[dict[str, Any]], Matrix]:
    """Decide, for each text in order, kept or dropped (and why); also return the embeddings of kept texts.

    Each decision is ``{"kept": bool, "reason": None|"exact"|"excluded"|"near", "duplicate_of": index or
    exclusion text, "similarity": float}``. ``timings`` (when given) receives the seconds spent embedding
    and searching.
    """
    clock = time.perf_counter()
    decisions: list[dict[str, Any]] = [
        {"kept": True, "reason": None, "duplicate_of": None, "similarity": None} for _ in texts
    ]
    first: dict[str, int] = {}
    unique: list[int] = []
    excluded_texts = {normalise(t): t for t in exclude or []}
    for i, text in enumerate(texts):
        key = normalise(text)
        if key in excluded_texts:  # exact match: no cosine (float32 self-similarity may fall just under 1)
            decisions[i].update(kept=False, reason="excluded", duplicate_of=excluded_texts[key], similarity=1.0)
        elif key in first:
            decisions[i].update(kept=False, reason="exact", duplicate_of=first[key], similarity=1.0)
        else:
            first[key] = i
            unique.append(i)
    emb = encode(embedder, [texts[i] for i in unique], "embedding prompts", progress)
    embedded = time.perf_counter()
    survivors = list(range(len(unique)))
    if exclude and unique:
        ref = exclude_embeddings if exclude_embeddings is not None else encode(embedder, exclude, "embedding", progress)
        best, where = nearest(emb, ref, block_size)
        survivors = []
        for j, i in enumerate(unique):
            if best[j] >= threshold:
                decisions[i].update(
                    kept=False, reason="excluded", duplicate_of=exclude[int(where[j])], similarity=float(best[j])
                )
            else:
                survivors.append(j)
    kept_emb = emb[survivors]
    found = near_duplicates(kept_emb, threshold, block_size)
    for local, j in enumerate(survivors):
        if not found.keep[local]:
            decisions[unique[j]].update(
                kept=False,
                reason="near",
                duplicate_of=unique[survivors[int(found.duplicate_of[local])]],
                similarity=float(found.similarity[local]),
            )
    if timings is not None:
        timings["embed_s"] = timings.get("embed_s", 0.0) + embedded - clock
        timings["search_s"] = timings.get("search_s", 0.0) + time.perf_counter() - embedded
    return decisions, kept_emb[found.keep]


def _exclusion_texts(stage: Stage) -> list[str]:
    texts: list[str] = []
    for item in stage.config.dedup.exclude:
        columns = ColumnMap(prompt=item.prompt_column, default_label="benign")
        texts.extend(p.text for p in load_benchmark(str(stage.config.path(item.path)), columns).prompts)
    return texts


def run_dedup(stage: Stage) -> dict[str, Any]:
    """Deduplicate the moderated benign and toxic pools; record decisions and the diversity report."""
    cfg = stage.config.dedup
    rows = [r for r in stage.records.load(MODERATION_KIND) if r["final"] in POOLS]
    public = _exclusion_texts(stage)
    exclude = public + list(EXAMPLE_TEXTS)  # the templates' examples are never prompts of the benchmark
    examples = set(EXAMPLE_TEXTS)
    embedder = Embedder(batch_size=EMBED_BATCH)
    exclude_emb = encode(embedder, exclude, "embedding the exclusion set", stage.progress) if exclude else None
    records: list[dict[str, Any]] = []
    reasons: dict[str, Counter[str]] = {}
    report: dict[str, dict[str, Any]] = {}
    for pool in POOLS:
        items = [r for r in rows if r["final"] == pool]
        texts = [r["text"] for r in items]
        decisions, kept_emb = dedup_texts(
            texts, cfg.threshold, embedder, exclude, cfg.block_size, stage.progress, exclude_embeddings=exclude_emb
        )
        kept_rows = [r for r, d in zip(items, decisions, strict=True) if d["kept"]]
        for r, d in zip(items, decisions, strict=True):
            duplicate = d["duplicate_of"]
            if d["reason"] == "excluded" and duplicate in examples:
                d["reason"] = "template_example"
            records.append(
                {
                    "id": r["id"],
                    "pool": pool,
                    "text": r["text"],
                    "category": r["category"],
                    "kept": d["kept"],
                    "reason": d["reason"],
                    "duplicate_of": items[duplicate]["id"] if isinstance(duplicate, int) else duplicate,
                    "similarity": d["similarity"],
                }
            )
            reasons.setdefault(pool, Counter())[d["reason"] or "kept"] += 1
        if pool == "benign":
            report = _diversity(kept_rows, kept_emb, cfg.sample_cap)
    stage.records.replace(KIND, records)
    kept_counts: dict[str, Counter[str]] = {}
    lines: dict[str, Counter[str]] = {}
    for rec in records:
        if rec["kept"]:
            kept_counts.setdefault(rec["pool"], Counter())[rec["category"]] += 1
        if rec["pool"] == "benign":
            lines.setdefault(rec["category"], Counter())[rec["reason"] or "kept"] += 1
    return stage.report(
        "dedup",
        checks=_checks(stage, lines),
        funnel={
            name: funnel(sum(c.values()), c["kept"], {k: v for k, v in c.items() if k != "kept"})
            for name, c in lines.items()
        },
        embedder=MODEL_ID,
        threshold=cfg.threshold,
        exclusion_prompts=len(public),
        decisions={pool: dict(c) for pool, c in reasons.items()},
        counts={pool: dict(c) for pool, c in kept_counts.items()},
        diversity=report,
    )


def _checks(stage: Stage, lines: dict[str, Counter[str]]) -> list[Check]:
    cfg = stage.config.checks
    kept = sum(c["kept"] for c in lines.values())
    benign = sum(sum(c.values()) for c in lines.values())
    out = [
        Check("benign_set", kept > 0, f"{kept} of {benign} benign prompts kept")
        if kept
        else Check(
            "benign_set",
            False,
            f"no benign prompt left to export ({benign} before dedup): earlier stages produced nothing usable; "
            "read the datasheet's per-category table",
        )
    ]
    out.append(
        category_yield(
            "yield",
            {name: c["kept"] for name, c in lines.items()},
            {name: sum(c.values()) for name, c in lines.items() if sum(c.values()) >= cfg.min_items},
            cfg,
            "benign prompts after dedup",
            "the generator repeats itself; raise rewrite.temperature or use a stronger generator",
        )
    )
    return out


def _diversity(rows: list[dict[str, Any]], emb: Matrix, cap: int) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    categories = sorted({r["category"] for r in rows})
    for category in categories:
        idx = [i for i, r in enumerate(rows) if r["category"] == category]
        texts = [rows[i]["text"] for i in idx]
        picked = diversity.sample(texts, cap)
        self_bleu = diversity.self_bleu([texts[i] for i in picked])
        cosine = diversity.mean_pairwise_cosine(emb[idx])
        distinct = diversity.distinct_n(texts, 2)
        out[category] = {
            "prompts": len(texts),
            "self_bleu": None if self_bleu is None else round(self_bleu, 4),
            "self_bleu_sample": len(picked),
            "distinct_2": None if distinct is None else round(distinct, 4),
            "mean_pairwise_cosine": None if cosine is None else round(cosine, 4),
        }
    return out
