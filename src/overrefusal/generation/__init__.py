"""Build an OR-Bench-style over-refusal benchmark with any LLM: seeds -> rewrite -> moderate -> dedup -> hard -> export.

Every stage reads and writes records in the store (scoped by a project name), sends model calls only through
:class:`overrefusal.cached_model.CachedModel` (so they are cached by query hash and never repeated), and records
the tokens it used.
"""

from overrefusal.generation.config import PipelineConfig, load_config
from overrefusal.generation.pipeline import STAGES, run_all, run_stage
from overrefusal.generation.taxonomy import Category, Taxonomy, load_taxonomy

__all__ = ["STAGES", "Category", "PipelineConfig", "Taxonomy", "load_config", "load_taxonomy", "run_all", "run_stage"]
