"""``run`` options that move the work off the per-request path: provider batch APIs, a Ray cluster."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from overrefusal.backends import Backend
from overrefusal.cached_model import BulkSender
from overrefusal.cli.options import FiniteFloat
from overrefusal.errors import BadInputError
from overrefusal.store import Store
from overrefusal.verdicts import BulkJudge

F = TypeVar("F", bound=Callable[..., Any])


def scale_options(func: F) -> F:
    """--batch, --batch-poll, --batch-size, --no-wait, --ray."""
    decorators = [
        click.option(
            "--ray",
            "ray_address",
            is_flag=False,
            flag_value="local",
            default=None,
            metavar="[ADDRESS]",
            help="Answer (in-process models: embedded) and judge large response sets on a Ray cluster: its "
            "address (e.g. 10.0.0.1:6379), or nothing for $RAY_ADDRESS or a cluster on this machine ([ray] extra).",
        ),
        click.option(
            "--batch",
            is_flag=True,
            help="Answer through the provider's batch API (openai: Files + Batches; anthropic: Message Batches): "
            "half the price, results within 24 h; run again to resume.",
        ),
        click.option(
            "--batch-poll",
            type=FiniteFloat(min=0, min_open=True),
            default=30.0,
            show_default=True,
            metavar="SECONDS",
            help="--batch: seconds between status requests.",
        ),
        click.option(
            "--batch-size",
            type=click.IntRange(min=1),
            default=None,
            metavar="N",
            help="--batch: requests per batch [the provider's limit: openai 50,000, anthropic 100,000].",
        ),
        click.option(
            "--no-wait",
            is_flag=True,
            help="--batch: submit, look once, and stop (exit 1) if unfinished; run the same command again to collect.",
        ),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def bulk_factory(opts: dict[str, Any], backend_args: dict[str, Any]) -> Callable[[Backend, Store], BulkSender] | None:
    """The sender factory the options ask for, or None for the per-request path."""
    if opts["batch"] and opts["ray_address"]:
        raise BadInputError("--batch and --ray are two ways to answer: choose one")
    address = opts["ray_address"]
    if address is not None:
        from overrefusal.cluster.session import import_ray

        import_ray()  # a missing extra is a usage error before anything loads

        def on_ray(backend: Backend, store: Store) -> BulkSender:
            from overrefusal.cluster.answers import RaySender

            return RaySender(address, backend.name, backend_args, backend.model)

        return on_ray
    if not opts["batch"]:
        if opts["no_wait"] or opts["batch_size"] is not None:
            raise BadInputError("--no-wait and --batch-size apply to --batch runs: add --batch or drop them")
        return None

    def build(backend: Backend, store: Store) -> BulkSender:
        from overrefusal.backends.http import HttpBackend
        from overrefusal.batches.sender import BatchSender, batch_api

        if not isinstance(backend, HttpBackend):
            raise BadInputError(
                f"--batch works with the openai and anthropic backends, not {backend.name}: drop --batch"
            )
        return BatchSender(
            batch_api(backend),
            store,
            poll_s=opts["batch_poll"],
            max_requests=opts["batch_size"],
            wait=not opts["no_wait"],
        )

    return build


def bulk_judge(opts: dict[str, Any], judge_args: dict[str, Any]) -> BulkJudge | None:
    """The Ray judge when ``--ray`` is given (for judges that need nothing but their weights)."""
    if opts["ray_address"] is None:
        return None
    from overrefusal.cluster.judging import RayJudge

    return RayJudge(opts["ray_address"], judge_args)
