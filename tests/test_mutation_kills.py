"""Tests written to kill the mutants ``make mutation`` found surviving (one behaviour each, named for it)."""

from __future__ import annotations

from overrefusal.backends.retry import Endpoints


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
