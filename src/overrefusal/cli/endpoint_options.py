"""Options for models behind HTTP endpoints, and their resolution into backend arguments."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from click.core import ParameterSource

from overrefusal import model_config
from overrefusal.backends import backends
from overrefusal.cli.options import FiniteFloat
from overrefusal.errors import BadInputError

F = TypeVar("F", bound=Callable[..., Any])


def endpoint_options(func: F) -> F:
    """--base-url, --concurrency, --rpm, --api-key-env, --give-up-after, --max-retry-after, --models-file."""
    decorators = [
        click.option(
            "--base-url",
            "base_urls",
            multiple=True,
            metavar="URL",
            help="Server base URL, e.g. http://127.0.0.1:8000/v1 (repeat to spread requests over several servers).",
        ),
        click.option(
            "--concurrency",
            type=click.IntRange(min=1),
            default=None,
            help="HTTP backends: requests in flight at once [32].",
        ),
        click.option("--rpm", type=FiniteFloat(min=0, min_open=True), default=None, help="Requests-per-minute limit."),
        click.option(
            "--api-key-env",
            default=None,
            metavar="NAME",
            help="Name of the environment variable holding the API key (never the key itself).",
        ),
        click.option(
            "--give-up-after",
            "give_up_after_s",
            type=FiniteFloat(min=0, min_open=True),
            default=None,
            metavar="SECONDS",
            help="HTTP backends: stop the run when every base URL has been down this long [120].",
        ),
        click.option(
            "--max-retry-after",
            "max_retry_after_s",
            type=FiniteFloat(min=0),
            default=None,
            metavar="SECONDS",
            help="HTTP backends: longest Retry-After waited for; a longer one stops the run [60].",
        ),
        click.option(
            "--models-file",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            envvar="OVERREFUSAL_MODELS_FILE",
            help="YAML file declaring models; --model NAME picks an entry [$OVERREFUSAL_HOME/models.yaml].",
        ),
    ]
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def resolve_backend(
    ctx: click.Context, opts: dict[str, Any], backend_args: dict[str, Any]
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """Combine --backend/--model, a models-file entry and endpoint options.

    Returns:
        (backend name, backend arguments, generation parameters taken from the entry for
        options left at their defaults).
    """

    def given(name: str) -> bool:
        return ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT, None)

    backend = opts["backend"]
    params: dict[str, Any] = {}
    entry = model_config.lookup(opts.get("model"), opts.get("models_file"))
    if entry is not None:
        backend = opts["backend"] if given("backend") else entry.backend
        backend_args = {**entry.backend_args(), **{k: v for k, v in backend_args.items() if k != "model"}}
        params = {k: v for k, v in entry.params.model_dump().items() if v is not None and not given(k)}
    elif opts.get("base_urls") and not given("backend"):
        backend = "openai"  # a base URL alone means an OpenAI-compatible server
    endpoint: dict[str, Any] = {"base_url": list(opts["base_urls"])} if opts.get("base_urls") else {}
    options = ("concurrency", "rpm", "api_key_env", "give_up_after_s", "max_retry_after_s")
    endpoint.update({n: opts[n] for n in options if opts.get(n) is not None})
    if endpoint:
        accepted = inspect.signature(backends.factory(backend)).parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
        refused = [n for n in endpoint if n not in accepted and not takes_any]
        if refused:
            names = ", ".join("--" + n.removesuffix("_s").replace("_", "-") for n in refused)
            raise BadInputError(f"{names} do(es) not apply to the {backend} backend: use --backend openai or anthropic")
    return backend, {**backend_args, **endpoint}, params
