"""The retry and limit policy of the HTTP backends: ``Retry-After``, backoff, ``--rpm``, endpoint health.

Pure bookkeeping, no I/O: :class:`~overrefusal.backends.http.HttpTransport` asks these how long to
wait and where to send; the clocks and sleeps are parameters so tests run them on fake time.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from email.utils import parsedate_to_datetime

log = logging.getLogger("overrefusal.http")


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time())


def backoff_delay(
    attempt: int,
    base_s: float,
    max_s: float,
    retry_after: float | None = None,
    rand: Callable[[], float] = random.random,
    max_retry_after_s: float = 60.0,
) -> float:
    """Delay before retry number ``attempt + 1``: jittered exponential, at least ``Retry-After`` (capped)."""
    ceiling = min(max_s, base_s * (2 ** min(attempt, 30)))
    delay: float = ceiling * (0.5 + 0.5 * rand())
    if retry_after is not None:
        wait = min(retry_after, max_retry_after_s)
        # spread the requests told to wait the same time, so they do not all come back at once
        delay = max(delay, wait * (1.0 + 0.1 * rand()) + 0.05 * base_s * rand())
    return delay


class RateLimiter:
    """Spaces request starts evenly to at most ``rpm`` per minute (no bursts)."""

    def __init__(
        self,
        rpm: float,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Create a limiter of ``rpm`` requests per minute (``sleep`` and ``clock``: tests pass fakes)."""
        self._interval = 60.0 / rpm
        self._next = 0.0
        self._sleep = sleep
        self._clock = clock

    async def wait(self) -> None:
        """Return when the next request may start."""
        now = self._clock()
        start = max(now, self._next)
        self._next = start + self._interval
        if start > now:
            await self._sleep(start - now)


class Endpoints:
    """Round-robin over base URLs, skipping those that recently refused connections; a circuit breaker.

    A base URL whose last ``down_after`` attempts all failed (connection refused or reset, timeout,
    5xx) is down since the first of them was sent; :meth:`down_for` says how long *every* base
    URL has been down.
    """

    def __init__(
        self, urls: Sequence[str], cooldown_s: float, down_after: int = 5, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """Track ``urls``; a failed one is avoided for ``cooldown_s`` seconds (``clock``: tests pass a fake one)."""
        self.urls = tuple(urls)
        self._clock = clock
        self._cooldown_s = cooldown_s
        self._down_after = down_after
        self._down_until = [0.0] * len(self.urls)
        self._streak = [0] * len(self.urls)
        self._streak_start = [0.0] * len(self.urls)
        self._next = 0

    def pick(self) -> int:
        """Index of the next usable URL (the one back soonest when all are down)."""
        count = len(self.urls)
        if count == 1:
            return 0
        now = self._clock()
        for step in range(count):
            index = (self._next + step) % count
            if self._down_until[index] <= now:
                self._next = index + 1
                return index
        return min(range(count), key=self._down_until.__getitem__)

    def failed(self, index: int, sent: float, avoid: bool = True) -> None:
        """Count a failed attempt on URL ``index`` sent at ``sent`` (monotonic); ``avoid`` it for the cooldown."""
        if self._streak[index] == 0:
            self._streak_start[index] = sent
        self._streak[index] += 1
        if avoid:
            now = self._clock()
            if len(self.urls) > 1 and self._down_until[index] <= now:
                log.warning("%s is not answering; using the other base URLs for a while", self.urls[index])
            self._down_until[index] = now + self._cooldown_s

    def succeeded(self, index: int) -> None:
        """Mark URL ``index`` as up."""
        self._down_until[index] = 0.0
        self._streak[index] = 0

    def down_for(self, now: float) -> float:
        """Seconds every URL has been down (0 when one of them is up)."""
        if min(self._streak) < self._down_after:
            return 0.0
        return now - max(self._streak_start)
