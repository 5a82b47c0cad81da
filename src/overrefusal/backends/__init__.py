"""Backends: the models under test. Each is one module plus one registration below."""

from __future__ import annotations

from overrefusal.backends.base import Backend
from overrefusal.registry import Registry

backends: Registry[Backend] = Registry("backend")
backends.add("embedded", "overrefusal.backends.embedded:EmbeddedBackend", extra="embedded")
backends.add("fake", "overrefusal.backends.fake:FakeBackend")
backends.add("openai", "overrefusal.backends.openai_compat:OpenAIBackend")
backends.add("anthropic", "overrefusal.backends.anthropic:AnthropicBackend")
backends.add("openai-images", "overrefusal.backends.image_generation:ImageGenerationBackend")
backends.add("vllm", "overrefusal.backends.vllm_engine:VLLMBackend")

__all__ = ["Backend", "backends"]
