"""Leases on query keys, so that processes sharing one store never send the same request twice.

Before sending a query, a process takes the lease on its key in the store (one transaction per
chunk of keys). A key leased by another live process is not sent: its answer (or its final error)
is awaited in the store, and a key with a stored answer is never leased. A lease ends when its
holder finishes (it releases all its leases at once), when it expires (its holder stopped renewing
it: a heartbeat renews every lease every ``ttl_s / 3``), or at once when its holder is a process of
this machine that no longer exists (``kill -9``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
from collections.abc import Sequence

from overrefusal.pids import alive
from overrefusal.store import Store

TTL_S = 30.0
"""How long a lease lasts without renewal."""


class Leases:
    """This process's leases in ``store``.

    Args:
        store: the shared store.
        ttl_s: lease lifetime without renewal.
    """

    def __init__(self, store: Store, ttl_s: float = TTL_S) -> None:
        """Create an owner identity (host, process id, random token) for this set of leases."""
        self.store = store
        self.ttl_s = ttl_s
        self._host = socket.gethostname()
        self.owner = f"{self._host}:{os.getpid()}:{secrets.token_hex(6)}"
        self._heartbeat: asyncio.Task[None] | None = None

    def _dead(self, owners: Sequence[str]) -> list[str]:
        """The ``owners`` that were processes of this machine and no longer exist."""
        dead: list[str] = []
        for owner in set(owners):
            host, _, rest = owner.partition(":")
            pid = rest.partition(":")[0]
            if owner != self.owner and host == self._host and pid.isdigit() and not alive(int(pid)):
                dead.append(owner)
        return dead

    def take(self, keys: Sequence[str], refresh: bool = False) -> list[str]:
        """Lease the ``keys`` that are free and unanswered (answered too with ``refresh``); return those held."""
        return self.store.take_leases(keys, self.owner, self.ttl_s, answered_too=refresh)

    def take_free(self, keys: Sequence[str], refresh: bool = False) -> list[str]:
        """Like :meth:`take`, first ending the leases of dead holders among ``keys``."""
        owners = self.store.lease_owners(keys)
        dead = self._dead([o for o, _ in owners.values()])
        return self.store.take_leases(keys, self.owner, self.ttl_s, dead=dead, answered_too=refresh)

    def start(self) -> None:
        """Start renewing this process's leases (call inside the running event loop)."""

        async def beat() -> None:
            while True:
                await asyncio.sleep(self.ttl_s / 3)
                self.store.renew_leases(self.owner, self.ttl_s)

        self._heartbeat = asyncio.ensure_future(beat())

    def stop(self) -> None:
        """Stop renewing and end every lease still held (requests not answered go back to the pool)."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            self._heartbeat = None
        with contextlib.suppress(Exception):  # a damaged or closed store: the leases expire anyway
            self.store.release_leases(self.owner)
