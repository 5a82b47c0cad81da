"""``overrefusal serve-model``: the embedded model behind an OpenAI-compatible HTTP endpoint."""

from __future__ import annotations

import asyncio

import click

from overrefusal.backends.embedded import EmbeddedBackend
from overrefusal.serve import serve


@click.command("serve-model")
@click.option("--model", "-m", default="qwen", show_default=True, help="qwen, smollm2 or a .gguf path.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback by default).")
@click.option("--port", type=click.IntRange(0, 65535), default=0, help="Port [a free one].")
def serve_model(model: str, host: str, port: int) -> None:
    """Serve the embedded model over the OpenAI chat-completions protocol until Ctrl-C.

    Then evaluate it like any server: overrefusal run --base-url URL --model NAME
    """
    backend = EmbeddedBackend(model=model)
    backend.model_path()  # assemble and verify the model file before listening
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"warning: listening on {host}: anyone who can reach it can use the model", err=True)

    def ready(url: str) -> None:
        click.echo(f"serving {backend.model} at {url}", err=True)
        click.echo(f"evaluate it with: overrefusal run --base-url {url} --model {backend.model}", err=True)
        click.echo(url)

    try:
        asyncio.run(serve(backend, host, port, ready))
    except KeyboardInterrupt:
        click.echo("stopped", err=True)
