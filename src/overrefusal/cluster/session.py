"""Connecting to Ray, and streaming a Ray Data dataset's rows back into the driver's event loop."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

from overrefusal.errors import MissingDependencyError, RunError

LOCAL = "local"
"""``--ray`` without an address: the cluster named by ``RAY_ADDRESS``, else a new one on this machine."""

FORWARDED_ENV = ("OVERREFUSAL_MODELS",)
"""Variables the workers get from the driver (where model files are assembled); never keys."""


def import_ray() -> Any:
    """The ``ray`` module with Ray Data (the ``ray`` extra)."""
    try:
        import ray
        import ray.data  # noqa: F401 - Ray Data must be there too
    except ImportError as exc:
        raise MissingDependencyError("--ray", "ray", [exc.name or "ray[data]"]) from None
    return ray


def connect(address: str) -> Any:
    """Connect this process to the cluster at ``address`` (or :data:`LOCAL`) once; return the ``ray`` module.

    Raises:
        RunError: no cluster answers at ``address``.
    """
    ray = import_ray()
    if not ray.is_initialized():
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # Ray would report usage to its makers
        options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
        try:
            if address == LOCAL:
                ray.init(**options)
            else:
                ray.init(address=address, **options)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise RunError(
                f"cannot connect to the Ray cluster at {address} ({str(exc).splitlines()[0][:200]}): start it with "
                "`ray start --head` (or pass --ray alone for a cluster on this machine)"
            ) from None
    for name in ("ray", "ray.data"):  # Ray's info lines would mix with the run's own output
        logging.getLogger(name).setLevel(logging.ERROR)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the driver draws its own
    context.print_on_execution_start = False
    return ray


def cluster_cpus(ray: Any) -> int:
    """CPUs in the cluster."""
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def smallest_node_cpus(ray: Any) -> int:
    """CPUs of the cluster's smallest live node (so one model copy fits on any node)."""
    sizes = [int(n.get("Resources", {}).get("CPU", 0)) for n in ray.nodes() if n.get("Alive")]
    return max(1, min((s for s in sizes if s > 0), default=1))


def forwarded_env() -> dict[str, str]:
    """The driver's settings the workers need (see :data:`FORWARDED_ENV`)."""
    return {name: os.environ[name] for name in FORWARDED_ENV if os.environ.get(name)}


def apply_env(env: dict[str, str]) -> None:
    """In a worker: take the driver's settings."""
    os.environ.update(env)


async def stream_rows(rows: Iterator[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    """Yield the rows of a blocking iterator (a dataset's ``iter_rows()``) in the event loop as they come.

    The iterator runs in a thread, so the loop (lease renewals, commits) keeps running meanwhile.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    def pump() -> None:
        try:
            for row in rows:
                loop.call_soon_threadsafe(queue.put_nowait, ("row", row))
        except BaseException as exc:  # handed to the loop, raised there
            loop.call_soon_threadsafe(queue.put_nowait, ("error", exc))
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, ("end", None))

    threading.Thread(target=pump, name="ray-rows", daemon=True).start()
    while True:
        kind, value = await queue.get()
        if kind == "end":
            return
        if kind == "error":
            raise RunError(
                f"the Ray job failed: {str(value).splitlines()[0][:300] if str(value) else type(value).__name__}"
            )
        yield value
