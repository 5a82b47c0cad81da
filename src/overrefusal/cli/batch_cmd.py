"""``overrefusal batch``: batch files for offline inference (``vllm run-batch``), and the batch jobs in the store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from overrefusal.backends import backends
from overrefusal.benchmarks import load_benchmark
from overrefusal.cached_model import CachedModel, CachePolicy
from overrefusal.cli.options import benchmark_options, column_map, generate_params, generation_options, parse_kv
from overrefusal.records import Query
from overrefusal.store import Store

PLACEHOLDER_URL = "http://127.0.0.1/v1"
"""An export sends nothing: the URL only satisfies the backend (URLs are not part of the cache key)."""


@click.group()
def batch() -> None:
    """Batch files for offline inference (vllm run-batch) and the batch jobs of `run --batch`."""


@batch.command("export")
@benchmark_options
@click.option("--model", "-m", required=True, help="The model name the answers are stored under (as vLLM serves it).")
@click.option("-B", "backend_args", multiple=True, metavar="KEY=VALUE", help="Extra openai backend argument.")
@generation_options
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("requests.jsonl"),
    show_default=True,
    help="The request file to write.",
)
def export_cmd(**opts: Any) -> None:
    """Write the requests `overrefusal run --base-url ... --model MODEL` would send as an OpenAI-batch JSONL.

    Only queries without a stored answer are written. Run the file with `vllm run-batch`, import its
    output with `overrefusal batch import`, then the same `overrefusal run` finds every answer cached.
    """
    from overrefusal.batches.files import export_requests

    args = {"base_url": PLACEHOLDER_URL, **parse_kv(opts["backend_args"], "-B"), "model": opts["model"]}
    backend = backends.create("openai", **args)
    params = generate_params(opts)
    if params.max_tokens is None:
        params = params.model_copy(update={"max_tokens": backend.default_max_tokens})
    bench = load_benchmark(opts["benchmark"], column_map(opts), config=opts["hub_config"]).limit(opts["limit"])
    queries = [Query.for_prompt(p, params) for p in bench.prompts]
    policy = CachePolicy(refresh=opts["no_cache"], tag=opts["cache_tag"])
    with Store() as store:
        done = export_requests(CachedModel(backend, store, policy), queries, opts["samples"], opts["output"])
    click.echo(
        f"wrote {done.requests} requests to {done.path} ({done.answered} answers already in the store); run them with:"
    )
    click.echo(f"  vllm run-batch -i {done.path} -o results.jsonl --model {opts['model']}")
    click.echo("then: overrefusal batch import results.jsonl")


@batch.command("import")
@click.argument("results", type=click.Path(dir_okay=False, path_type=Path))
def import_cmd(results: Path) -> None:
    """Commit the answers of a `vllm run-batch` output file (custom ids map back to the exported queries)."""
    from overrefusal.batches.files import import_results

    with Store() as store:
        done = import_results(store, results)
    skipped = f"; {done.unknown} lines with unknown custom ids skipped" if done.unknown else ""
    click.echo(f"imported {done.answers} answers and {done.errors} errors from {results}{skipped}")


@batch.command("list")
def list_cmd() -> None:
    """The batch jobs in the store: submitted batches (run --batch) and exported files."""
    from overrefusal.batches.jobs import all_jobs

    with Store() as store:
        found = all_jobs(store)
    if not found:
        click.echo("no batch jobs in the store")
    for job in found:
        state = job.outcome or f"{job.status}, {sum(job.counts.values()) if job.counts else 0} counted"
        click.echo(f"{job.id}  {job.provider}  {job.remote_id or '(not confirmed)'}  {job.model}  {job.total}  {state}")
