"""Exceptions with exit codes: bad input is 2, a failed run is 1."""

from __future__ import annotations


class OverrefusalError(Exception):
    """Base class. The message is one line that says what is wrong and how to fix it."""

    exit_code = 1


class BadInputError(OverrefusalError):
    """The user's input (file, option, config) is unusable. Exit code 2."""

    exit_code = 2


class RunError(OverrefusalError):
    """The run could not complete (backend unusable, model files broken, ...). Exit code 1."""

    exit_code = 1


class RunStopped(RunError):
    """A cause that fails every request (rejected key, unknown model, quota, endpoints down) stopped the run.

    The message names the cause and the fix. The run keeps what it received; running the same
    command again continues it.
    """


class RunIncomplete(RunError):
    """The run was written but is incomplete (stopped early, or too many prompts without an answer). Exit code 1."""


class MissingDependencyError(BadInputError):
    """An optional dependency is not installed; the message names the pip extra. Exit code 2."""

    def __init__(self, feature: str, extra: str, packages: list[str]) -> None:
        """Build the message from the feature, the extra that provides it and its packages."""
        super().__init__(f"{feature} needs {', '.join(packages)}: install it with `pip install 'overrefusal[{extra}]'`")
