"""Backends: the models under test. Each is one module plus one registration below."""

from __future__ import annotations

from overrefusal.backends.base import Backend
from overrefusal.registry import Registry

backends: Registry[Backend] = Registry("backend")
backends.add("embedded", "overrefusal.backends.embedded:EmbeddedBackend")
backends.add("fake", "overrefusal.backends.fake:FakeBackend")

__all__ = ["Backend", "backends"]
