"""The embedded backend: a GGUF chat model run in-process with xllamacpp (llama.cpp), offline."""

from __future__ import annotations

import asyncio
import os
import platform
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

from overrefusal.backends import model_files
from overrefusal.backends.base import Backend
from overrefusal.backends.chat_format import chat_completion_response
from overrefusal.errors import BadInputError, MissingDependencyError, RunError
from overrefusal.records import Query, Response, ResponseError


def check_cpu(cpuinfo: Path = Path("/proc/cpuinfo")) -> None:
    """Refuse early on x86-64 CPUs without AVX2: the prebuilt llama.cpp would die with SIGILL."""
    if platform.machine().lower() not in ("x86_64", "amd64") or not cpuinfo.exists():
        return
    flags = next((line for line in cpuinfo.read_text(errors="replace").splitlines() if line.startswith("flags")), "")
    if flags and "avx2" not in flags.split():
        raise RunError(
            "this CPU lacks AVX2, which the prebuilt llama.cpp in xllamacpp needs: "
            "serve the model elsewhere and use an HTTP backend (--backend openai)"
        )


def _usable_cores() -> int:
    """CPU cores this process may run on (a container's limit, not the host's core count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 2


def _import_xllamacpp() -> Any:
    check_cpu()
    try:
        import xllamacpp
    except ImportError as exc:
        raise MissingDependencyError("the embedded backend", "embedded", ["xllamacpp"]) from exc
    except OSError as exc:  # a shared library that cannot load on this CPU / libc
        raise RunError(f"xllamacpp cannot load on this machine ({exc}); use an HTTP backend instead") from exc
    return xllamacpp


class EmbeddedBackend(Backend):
    """Runs a local GGUF model in this process. Deterministic at temperature 0.

    Args:
        model: ``qwen`` (Qwen2.5-Coder-0.5B-Instruct, the default), ``smollm2``
            (SmolLM2-135M-Instruct), or a path to any chat GGUF file.
        n_ctx: context window in tokens.
        threads: CPU threads (default: all cores).
    """

    name: ClassVar[str] = "embedded"
    default_max_tokens: ClassVar[int] = 64
    """Small by default: on a laptop CPU every token costs; the opening of a reply is what
    refusal judges read. Raise it with ``--max-tokens`` for full answers."""

    def __init__(self, model: str = "qwen", n_ctx: int = 4096, threads: int | None = None) -> None:
        """Resolve the model file; the model itself loads on first use."""
        if not isinstance(n_ctx, int) or isinstance(n_ctx, bool) or n_ctx < 256:
            raise BadInputError(f"embedded backend: n_ctx must be a whole number >= 256, not {n_ctx!r}")
        if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
            raise BadInputError(f"embedded backend: threads must be a whole number >= 1, not {threads!r}")
        self._fingerprint = ""
        if model.lower().endswith(".gguf"):
            path = Path(model).expanduser()
            if not path.is_file():
                raise BadInputError(f"model file {path} does not exist: give an existing .gguf path")
            self._path: Path | None = path
            self._spec: model_files.ModelFile | None = None
            self._model_name = path.stem
            self._fingerprint = model_files.fingerprint(path)
        else:
            self._spec = model_files.resolve(model)
            self._path = None
            self._model_name = self._spec.name
        self._n_ctx = n_ctx
        self._threads = threads or _usable_cores()
        self._server: Any = None
        self._lock = threading.Lock()

    @property
    def model(self) -> str:
        """The model name, e.g. ``qwen2.5-coder-0.5b-instruct``."""
        return self._model_name

    @property
    def identity(self) -> dict[str, str]:
        """Name, plus a fingerprint of the file for a user's own GGUF (two files may share a name)."""
        identity = super().identity
        if self._fingerprint:
            identity["file"] = self._fingerprint
        return identity

    def check(self) -> None:
        """Fail now when llama.cpp (the ``embedded`` extra) cannot be imported."""
        _import_xllamacpp()

    def model_path(self) -> Path:
        """The verified GGUF path (assembled on first call)."""
        if self._path is None:
            assert self._spec is not None
            try:
                self._path = model_files.model_path(self._spec)
            except OSError as exc:
                raise RunError(
                    f"could not prepare {self._spec.name}: {exc}; "
                    "free disk space or point OVERREFUSAL_MODELS at a writable folder"
                ) from exc
        return self._path

    def _load(self) -> Any:
        with self._lock:
            if self._server is None:
                xlc = _import_xllamacpp()
                params = xlc.CommonParams()
                params.model.path = str(self.model_path())
                params.n_ctx = self._n_ctx
                params.n_parallel = 1  # >1 changes outputs and gives no speed-up on small CPUs
                params.n_gpu_layers = 0
                params.cpuparams.n_threads = self._threads
                params.cpuparams_batch.n_threads = self._threads
                params.verbosity = -1
                try:
                    self._server = xlc.Server(params)
                except Exception as exc:
                    raise RunError(f"could not load {self.model_path()}: {exc}") from exc
            return self._server

    def request_body(self, query: Query) -> dict[str, Any]:
        """The OpenAI-style chat body for ``query``."""
        body: dict[str, Any] = {
            "messages": [{"role": m.role, "content": m.content} for m in query.messages],
            "max_tokens": query.params.max_tokens or self.default_max_tokens,
            "temperature": query.params.temperature,
        }
        if query.params.top_p is not None:
            body["top_p"] = query.params.top_p
        if query.params.seed is not None:
            body["seed"] = query.params.seed
        return body

    def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        """Run one chat completion synchronously and return the OpenAI-style result."""
        server = self._load()
        with self._lock:  # llama.cpp's context is not re-entrant
            result = server.handle_chat_completions(body)
        if isinstance(result, str):
            import json

            result = json.loads(result)
        if not isinstance(result, dict):
            raise RunError(f"xllamacpp returned {type(result).__name__}, expected a dict")
        return result

    def generate_sync(self, query: Query, key: str) -> Response:
        """Answer one query in the calling thread."""
        start = time.perf_counter()
        try:
            result = self.complete(self.request_body(query))
        except RunError:
            raise
        except Exception as exc:  # one bad request must not stop the run
            error = ResponseError(kind="backend", message=str(exc)[:500])
            return self.failed(query, key, error, time.perf_counter() - start)
        latency = time.perf_counter() - start
        if "error" in result or not result.get("choices"):
            error = ResponseError(kind="backend", message=str(result.get("error", "no choices in result"))[:500])
            return self.failed(query, key, error, latency)
        return chat_completion_response(result, key=key, prompt_id=query.prompt_id, model=self.model, latency_s=latency)

    async def generate(self, query: Query, key: str) -> Response:
        """Answer one query in a worker thread so the event loop stays responsive."""
        return await asyncio.to_thread(self.generate_sync, query, key)

    async def aclose(self) -> None:
        """Drop the model."""
        self._server = None
