"""Blockwise near-duplicate search over L2-normalised embeddings (numpy, float32, bounded memory).

Greedy keep-first: texts are visited in their given order and a text is dropped when its cosine
similarity to an earlier *kept* text is at or above the threshold. Similarities are computed a
block of rows at a time against chunks of the kept set, so memory stays at
``block * chunk * 4`` bytes plus the embeddings, whatever the number of texts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float32]
CHUNK = 16384


@dataclass(frozen=True)
class NearDuplicates:
    """Per text: whether it is kept, the index it duplicates (-1 when kept) and that similarity."""

    keep: npt.NDArray[np.bool_]
    duplicate_of: npt.NDArray[np.int64]
    similarity: npt.NDArray[np.float32]


def _max_against(block: Matrix, others: Matrix) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """Best similarity of each row of ``block`` to any row of ``others`` (chunked)."""
    best = np.full(len(block), -2.0, dtype=np.float32)
    where = np.full(len(block), -1, dtype=np.int64)
    for start in range(0, len(others), CHUNK):
        sims = block @ others[start : start + CHUNK].T
        idx = sims.argmax(axis=1)
        val = sims[np.arange(len(block)), idx]
        better = val > best
        best[better] = val[better]
        where[better] = idx[better] + start
    return best, where


def near_duplicates(embeddings: Matrix, threshold: float, block_size: int = 1024) -> NearDuplicates:
    """Greedy keep-first near-duplicate removal within one set (see module docstring)."""
    n = len(embeddings)
    emb = np.ascontiguousarray(embeddings, dtype=np.float32)
    keep = np.zeros(n, dtype=bool)
    dup = np.full(n, -1, dtype=np.int64)
    sim = np.zeros(n, dtype=np.float32)
    kept_rows = np.empty_like(emb)
    kept_index = np.empty(n, dtype=np.int64)
    kept = 0
    for start in range(0, n, block_size):
        block = emb[start : start + block_size]
        best, where = _max_against(block, kept_rows[:kept])  # nothing kept yet: -2.0 everywhere
        inner = block @ block.T
        block_kept: list[int] = []
        for i in range(len(block)):
            if best[i] >= threshold:
                dup[start + i], sim[start + i] = kept_index[where[i]], best[i]
                continue
            if block_kept:
                row = inner[i, block_kept]
                j = int(row.argmax())
                if row[j] >= threshold:
                    dup[start + i], sim[start + i] = start + block_kept[j], row[j]
                    continue
            block_kept.append(i)
            keep[start + i] = True
        for i in block_kept:
            kept_rows[kept] = block[i]
            kept_index[kept] = start + i
            kept += 1
    return NearDuplicates(keep=keep, duplicate_of=dup, similarity=sim)


def nearest(
    embeddings: Matrix, others: Matrix, block_size: int = 1024
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """For each row of ``embeddings``: the best cosine to ``others`` and its index (-2.0 and -1 when empty).

    On equal cosines the first row of ``others`` wins; cosines are computed in float32 whatever the input.
    """
    n = len(embeddings)
    best = np.empty(n, dtype=np.float32)
    where = np.empty(n, dtype=np.int64)
    emb = np.ascontiguousarray(embeddings, dtype=np.float32)
    ref = np.ascontiguousarray(others, dtype=np.float32)
    for start in range(0, n, block_size):
        b, w = _max_against(emb[start : start + block_size], ref)
        best[start : start + block_size], where[start : start + block_size] = b, w
    return best, where
