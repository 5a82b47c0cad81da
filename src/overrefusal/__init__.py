"""overrefusal: measure and fix LLM over-refusal (OR-Bench method).

The Python API is what the CLI wraps::

    import overrefusal
    result = overrefusal.run(benchmark="starter", backend="embedded", limit=20)
    print(result.summary.metrics.over_refusal.rate)
    result = await overrefusal.arun(benchmark="starter", limit=20)   # in a notebook; run() works there too
    frame = result.to_pandas()                                        # one row per answer
"""

from __future__ import annotations

__version__ = "0.1.0"

from overrefusal.records import GenerateParams, Prompt, Query, Response, Verdict  # noqa: E402
from overrefusal.runner import RunResult, arun, run  # noqa: E402

__all__ = ["GenerateParams", "Prompt", "Query", "Response", "RunResult", "Verdict", "__version__", "arun", "run"]
