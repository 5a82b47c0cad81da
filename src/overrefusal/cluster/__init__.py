"""``run --ray``: the expensive work of a run on a Ray cluster.

Answering with in-process models and judging large response sets. The driver keeps the store:
results stream back and are committed as they arrive.
"""
