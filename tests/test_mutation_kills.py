"""Tests written to kill the mutants ``make mutation`` found surviving (one behaviour each, named for it)."""

from __future__ import annotations

import numpy as np
import pytest

from overrefusal.backends.retry import Endpoints
from overrefusal.generation.neardup import near_duplicates, nearest


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_endpoints_round_robin_skip_the_down_ones_and_come_back() -> None:
    clock = Clock()
    ends = Endpoints(["a", "b", "c"], cooldown_s=10.0, down_after=2, clock=clock)
    assert [ends.pick() for _ in range(4)] == [0, 1, 2, 0]
    ends.failed(1, sent=100.0)
    assert [ends.pick() for _ in range(3)] == [2, 0, 2]  # b avoided for the cooldown
    clock.now = 110.0  # cooldown over (at exactly its end)
    assert [ends.pick() for _ in range(3)] == [0, 1, 2]


def test_endpoints_all_down_pick_the_one_back_soonest() -> None:
    clock = Clock()
    ends = Endpoints(["a", "b"], cooldown_s=10.0, clock=clock)
    ends.failed(1, sent=100.0)
    clock.now = 101.0
    ends.failed(0, sent=101.0)
    assert ends.pick() == 1  # back at 110, a at 111


def test_the_circuit_breaker_counts_streaks_from_their_first_attempt() -> None:
    clock = Clock()
    ends = Endpoints(["a", "b"], cooldown_s=1.0, down_after=2, clock=clock)
    ends.failed(0, sent=100.0)
    ends.failed(0, sent=101.0)
    assert ends.down_for(105.0) == 0.0  # b is not down
    ends.failed(1, sent=102.0, avoid=False)
    assert ends.down_for(105.0) == 0.0  # b failed once, below down_after
    ends.failed(1, sent=103.0, avoid=False)
    assert ends.down_for(105.0) == 3.0  # every URL down since b's first failure of its streak at 102
    ends.succeeded(0)
    assert ends.down_for(105.0) == 0.0
    ends.failed(0, sent=104.0)
    ends.failed(0, sent=104.5)
    assert ends.down_for(106.0) == 2.0  # a's new streak began at 104


def test_a_single_endpoint_is_always_picked() -> None:
    ends = Endpoints(["a"], cooldown_s=10.0, clock=Clock())
    ends.failed(0, sent=100.0)
    assert ends.pick() == 0


# near-duplicates ------------------------------------------------------------------------------------
def _unit(*rows: list[float]) -> np.ndarray:
    out = np.zeros((len(rows), 4), dtype=np.float32)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_near_duplicates_over_many_blocks_keep_first_and_record_each_match() -> None:
    emb = _unit([1, 0], [0, 1], [1, 0.01], [0, 0, 1], [0.01, 1], [1, 0.02], [0, 0, 0, 1])
    for block_size in (1, 2, 3, 1024):
        found = near_duplicates(emb, threshold=0.99, block_size=block_size)
        assert found.keep.tolist() == [True, True, False, True, False, False, True], block_size
        assert found.duplicate_of.tolist() == [-1, -1, 0, -1, 1, 0, -1], block_size
        sims = found.similarity
        assert sims[[0, 1, 3, 6]].tolist() == [0, 0, 0, 0] and (sims[[2, 4, 5]] > 0.99).all(), block_size
        assert found.duplicate_of.dtype == np.int64 and sims.dtype == np.float32 and found.keep.dtype == np.bool_


def test_near_duplicates_compute_in_float32_whatever_the_input() -> None:
    just_under = 0.5 - 1e-10  # 0.5 once in float32, as the shipped embeddings are
    emb = np.array([[1.0, 0.0], [just_under, np.sqrt(1 - just_under**2)]], dtype=np.float64)
    assert near_duplicates(emb, threshold=0.5).keep.tolist() == [True, False]
    best, where = nearest(emb[1:], emb[:1])
    assert best[0] == np.float32(0.5) and where.tolist() == [0]


def test_nearest_of_nothing_is_minus_two_and_minus_one() -> None:
    best, where = nearest(_unit([1, 0]), np.zeros((0, 4), dtype=np.float32))
    assert best.tolist() == [-2.0] and where.tolist() == [-1]
    assert best.dtype == np.float32 and where.dtype == np.int64


def test_nearest_breaks_ties_by_the_first_row_across_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    from overrefusal.generation import neardup

    monkeypatch.setattr(neardup, "CHUNK", 2)
    others = _unit([0, 1], [1, 0], [0, 0, 1], [1, 0], [1, 0.5])
    best, where = nearest(_unit([1, 0], [1, 0.5], [0, 0, 0, 1]), others, block_size=2)
    assert where.tolist()[:2] == [1, 4]  # the first of two equal matches (rows 1 and 3, in different chunks)
    assert best[0] == pytest.approx(1.0) and best[1] == pytest.approx(1.0)
    assert best[2] == pytest.approx(0.0)
