"""The ``overrefusal`` command. Each subcommand parses options and calls the Python API."""

from __future__ import annotations

import sys
from typing import Any

import click

from overrefusal import __version__
from overrefusal.errors import OverrefusalError


class _Group(click.Group):
    """Turns library errors into one-line messages with the right exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OverrefusalError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted: completed requests are saved; run the same command again to continue", err=True)
            ctx.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "OVERREFUSAL"})
@click.version_option(__version__, prog_name="overrefusal")
def cli() -> None:
    """Measure LLM over-refusal: benign prompts refused vs toxic prompts refused."""


def _register() -> None:
    # one line per command module; each module defines a click command or group
    from overrefusal.cli import (
        batch_cmd,
        export_cmd,
        generate_cmd,
        inspect_cmd,
        judge_cmd,
        predict_cmd,
        report_cmd,
        run_cmd,
        serve_cmd,
        store_cmd,
        view_cmd,
    )

    cli.add_command(run_cmd.run)
    cli.add_command(inspect_cmd.list_cmd)
    cli.add_command(inspect_cmd.validate)
    cli.add_command(judge_cmd.judge)
    cli.add_command(serve_cmd.serve_model)
    cli.add_command(report_cmd.report)
    cli.add_command(view_cmd.view)
    cli.add_command(generate_cmd.generate)
    cli.add_command(store_cmd.store)
    cli.add_command(predict_cmd.predict)
    cli.add_command(export_cmd.export)
    cli.add_command(batch_cmd.batch)


_register()


def main() -> None:
    """Console-script entry point."""
    sys.exit(cli.main(prog_name="overrefusal", standalone_mode=True))
