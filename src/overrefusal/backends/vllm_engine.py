"""The ``vllm`` backend: vLLM's offline engine in this process (the ``vllm`` extra, a GPU).

Alone, it answers one query at a time, which wastes the engine: its place is ``run --ray`` (Ray
Data's ``ray.data.llm`` runs the engine on the cluster's GPU nodes in large batches), or
``batch export`` + ``vllm run-batch``. Untested here: the project's machines have no GPU.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping
from typing import Any, ClassVar

from overrefusal.backends.base import Backend
from overrefusal.backends.reasoning import split_thinking
from overrefusal.errors import BadInputError, MissingDependencyError
from overrefusal.records import Query, Response, ResponseError, Usage


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError as exc:
        raise MissingDependencyError("the vllm backend", "vllm", [exc.name or "vllm"]) from None
    return vllm


def sampling(query: Query, default_max_tokens: int) -> dict[str, Any]:
    """Sampling parameters of vLLM for ``query`` (the settings the HTTP backends send)."""
    params: dict[str, Any] = {
        "temperature": query.params.temperature,
        "max_tokens": query.params.max_tokens or default_max_tokens,
    }
    if query.params.top_p is not None:
        params["top_p"] = query.params.top_p
    if query.params.seed is not None:
        params["seed"] = query.params.seed
    return params


def engine_response(
    text: str, *, key: str, query: Query, model: str, finish: str | None, prompt_tokens: int, tokens: int
) -> Response:
    """A :class:`Response` from what the engine generated (the thinking of reasoning models split off)."""
    split = split_thinking(text)
    return Response(
        key=key,
        prompt_id=query.prompt_id,
        model=model,
        text=split.answer,
        reasoning=split.reasoning,
        ended_in_reasoning=split.ended_in_reasoning,
        finish_reason=finish,
        usage=Usage(prompt_tokens=prompt_tokens, completion_tokens=tokens),
    )


class VLLMBackend(Backend):
    """A Hugging Face model run by vLLM's engine.

    Args:
        model: the model (a hub id or a local folder), as ``vllm serve`` takes it.
        engine_kwargs: more arguments for the engine (``tensor_parallel_size``, ``max_model_len``, ...).
        replicas: engine copies ``run --ray`` starts on the cluster (one per GPU, or per
            ``tensor_parallel_size`` GPUs).
        batch_size: queries per engine call on the cluster.
    """

    name: ClassVar[str] = "vllm"
    default_max_tokens: ClassVar[int] = 512

    def __init__(
        self,
        model: str | None = None,
        engine_kwargs: Mapping[str, Any] | None = None,
        replicas: int = 1,
        batch_size: int = 64,
    ) -> None:
        """Configure the engine; it starts on the first query."""
        if not model:
            raise BadInputError("the vllm backend needs a model: pass --model ORG/NAME (or a local folder)")
        if replicas < 1 or batch_size < 1:
            raise BadInputError("vllm backend: replicas and batch_size must be at least 1: fix the -B values")
        self._model = str(model)
        self.engine_kwargs = dict(engine_kwargs or {})
        self.replicas = replicas
        self.batch_size = batch_size
        self._llm: Any = None
        self._lock = threading.Lock()

    @property
    def model(self) -> str:
        """The model as vLLM names it."""
        return self._model

    def check(self) -> None:
        """Fail now when vLLM (the ``vllm`` extra) is not installed."""
        _import_vllm()

    def _engine(self) -> Any:
        if self._llm is None:
            self._llm = _import_vllm().LLM(model=self._model, **self.engine_kwargs)
        return self._llm

    def _generate_sync(self, query: Query, key: str) -> Response:
        vllm = _import_vllm()
        start = time.perf_counter()
        with self._lock:
            try:
                outputs = self._engine().chat(
                    [[m.model_dump() for m in query.messages]],
                    vllm.SamplingParams(**sampling(query, self.default_max_tokens)),
                    use_tqdm=False,
                )
            except Exception as exc:  # one bad query must not stop the run
                return self.failed(query, key, ResponseError(kind="backend", message=str(exc)[:300]))
        result = outputs[0]
        done = result.outputs[0]
        response = engine_response(
            done.text,
            key=key,
            query=query,
            model=self._model,
            finish=done.finish_reason,
            prompt_tokens=len(result.prompt_token_ids or ()),
            tokens=len(done.token_ids or ()),
        )
        return response.model_copy(update={"latency_s": time.perf_counter() - start})

    async def generate(self, query: Query, key: str) -> Response:
        """Answer one query in a worker thread."""
        return await asyncio.to_thread(self._generate_sync, query, key)
