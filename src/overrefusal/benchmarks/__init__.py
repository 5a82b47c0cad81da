"""Benchmarks: the built-in starter set, local files in several layouts, and hub datasets."""

from overrefusal.benchmarks.loaders import Benchmark, ColumnMap, load_benchmark

__all__ = ["Benchmark", "ColumnMap", "load_benchmark"]
