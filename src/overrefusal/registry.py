"""Name -> factory registries for backends and judges.

Built-ins register a lazy ``"module:attr"`` path so optional dependencies are imported
only when used; third-party packages register through the ``overrefusal`` entry-point
group (the entry point's object is imported, and its import registers its plugins).
"""

from __future__ import annotations

import importlib
import inspect
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from overrefusal.errors import BadInputError, MissingDependencyError

T = TypeVar("T")

_plugins_loaded = False


def _load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for ep in entry_points(group="overrefusal"):
        ep.load()


class Registry(Generic[T]):
    """A named set of factories of one kind."""

    def __init__(self, kind: str) -> None:
        """Create an empty registry; ``kind`` names it in error messages (e.g. ``backend``)."""
        self.kind = kind
        self._entries: dict[str, str | Callable[..., T]] = {}
        self._extras: dict[str, str] = {}

    def add(self, name: str, target: str | Callable[..., T], extra: str | None = None) -> None:
        """Register ``target`` (a factory, or a lazy ``"module:attr"`` path) under ``name``.

        ``extra`` names the pip extra that provides its optional libraries: importing it without them
        is a one-line error that says what to install.
        """
        self._entries[name] = target
        if extra:
            self._extras[name] = extra

    def remove(self, name: str) -> None:
        """Unregister ``name`` (used by tests and plugins)."""
        self._entries.pop(name, None)

    def names(self) -> list[str]:
        """All registered names, sorted."""
        _load_plugins()
        return sorted(self._entries)

    def factory(self, name: str) -> Callable[..., T]:
        """Resolve ``name`` to its factory, importing it if it was registered lazily."""
        _load_plugins()
        try:
            target = self._entries[name]
        except KeyError:
            raise BadInputError(f"unknown {self.kind} {name!r}: choose one of {', '.join(self.names())}") from None
        if isinstance(target, str):
            module_name, _, attr = target.partition(":")
            try:
                module = importlib.import_module(module_name)
            except ModuleNotFoundError as exc:
                extra = self._extras.get(name)
                if extra is None or (exc.name or "").startswith("overrefusal"):
                    raise
                raise MissingDependencyError(f"the {name} {self.kind}", extra, [exc.name or "?"]) from None
            resolved: Callable[..., T] = getattr(module, attr)
            self._entries[name] = resolved
            return resolved
        return target

    def create(self, name: str, **kwargs: object) -> T:
        """Build the object registered under ``name`` with ``kwargs``.

        Arguments the factory does not take are a usage error, reported before anything is built.
        """
        factory = self.factory(name)
        try:
            signature = inspect.signature(factory)
        except (TypeError, ValueError):  # builtins without a signature: let the call decide
            return factory(**kwargs)
        try:
            signature.bind(**kwargs)
        except TypeError as exc:
            accepted = [
                p.name
                for p in signature.parameters.values()
                if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "self"
            ]
            raise BadInputError(
                f"{self.kind} {name!r} cannot take these arguments ({exc}): it takes {', '.join(accepted) or 'none'}"
            ) from None
        return factory(**_typed_arguments(self.kind, name, factory, kwargs))

    @contextmanager
    def temporarily(self, name: str, target: Callable[..., T]) -> Iterator[None]:
        """Register ``target`` for the duration of a ``with`` block, then restore the previous entry."""
        previous = self._entries.get(name)
        self._entries[name] = target
        try:
            yield
        finally:
            if previous is None:
                self._entries.pop(name, None)
            else:
                self._entries[name] = previous


def _typed_arguments(
    kind: str, name: str, factory: Callable[..., object], kwargs: dict[str, object]
) -> dict[str, object]:
    """Check (and coerce) arguments against the factory's annotations, so ``-B concurrency=abc`` is a usage error.

    Arguments whose annotation cannot be resolved or checked (e.g. a class instance) pass unchanged.
    """
    from pydantic import TypeAdapter, ValidationError

    target = factory.__init__ if inspect.isclass(factory) else factory
    try:
        hints = typing.get_type_hints(target)
    except Exception:  # annotations that only exist for type checkers
        return kwargs
    out = dict(kwargs)
    for key, value in kwargs.items():
        hint = hints.get(key)
        if hint is None or hint is typing.Any or hint is object:
            continue
        try:
            adapter: TypeAdapter[object] = TypeAdapter(hint)
        except Exception:  # a type pydantic cannot check (a Backend instance, say)
            continue
        try:
            out[key] = adapter.validate_python(value)
        except ValidationError as exc:
            problem = exc.errors()[0]["msg"].lower()
            raise BadInputError(
                f"{kind} {name!r}: {key}={value!r} is not valid ({problem}): fix that argument"
            ) from None
    return out
