"""``run --backend vllm --ray``: vLLM's engine on the cluster's GPU nodes through ``ray.data.llm``.

Untested here (no GPU on the project's machines): the rows, sampling parameters and the answer
format are the ones the in-process ``vllm`` backend uses; the engine stage is Ray's.
"""

from __future__ import annotations

from typing import Any

from overrefusal.backends.vllm_engine import VLLMBackend, engine_response, sampling
from overrefusal.cached_model import sample_query
from overrefusal.errors import MissingDependencyError
from overrefusal.records import Query


def vllm_dataset(ray: Any, rows: list[dict[str, Any]], args: dict[str, Any]) -> Any:
    """The dataset of ``rows`` (``key``, ``query``, ``sample``) answered by vLLM engines; each row gets ``response``.

    Rows the engine failed on keep their ``key`` and carry ``__inference_error__`` instead.
    """
    try:
        from ray.data.llm import build_processor, vLLMEngineProcessorConfig
    except ImportError as exc:
        raise MissingDependencyError("--backend vllm --ray", "vllm", [exc.name or "ray[llm]"]) from None
    backend = VLLMBackend(**args)
    config = vLLMEngineProcessorConfig(
        model_source=backend.model,
        engine_kwargs=backend.engine_kwargs,
        concurrency=backend.replicas,
        batch_size=backend.batch_size,
        should_continue_on_error=True,
    )
    limit = backend.default_max_tokens

    def preprocess(row: dict[str, Any]) -> dict[str, Any]:
        query = sample_query(Query.model_validate_json(str(row["query"])), int(row["sample"]))
        return {
            "key": row["key"],
            "query": row["query"],
            "messages": [m.model_dump() for m in query.messages],
            "sampling_params": sampling(query, limit),
        }

    def postprocess(row: dict[str, Any]) -> dict[str, Any]:
        query = Query.model_validate_json(str(row["query"]))
        response = engine_response(
            str(row.get("generated_text") or ""),
            key=str(row["key"]),
            query=query,
            model=backend.model,
            finish=row.get("finish_reason"),
            prompt_tokens=int(row.get("num_input_tokens") or 0),
            tokens=int(row.get("num_generated_tokens") or 0),
        )
        return {"key": row["key"], "response": response.model_dump_json()}

    processor = build_processor(config, preprocess=preprocess, postprocess=postprocess)
    return processor(ray.data.from_items(rows))
