"""Diversity of a set of prompts: Self-BLEU, distinct-2 and mean pairwise cosine.

* Self-BLEU (Zhu et al., 2018): the mean, over texts, of BLEU-4 of a text against all the
  others as references (uniform weights, add-one smoothing for orders 2-4, brevity penalty
  with the closest reference length). Lower is more diverse. Computed on a seeded sample of at
  most ``cap`` texts, since it is quadratic.
* distinct-2: distinct word bigrams / all word bigrams over the whole set. Higher is more diverse.
* mean pairwise cosine of sentence embeddings (off-diagonal) over the whole set, computed exactly in
  linear time from the sum of the unit vectors. Lower is more diverse.
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

TOKEN = re.compile(r"\w+|[^\w\s]")


def tokens(text: str) -> list[str]:
    """Lowercased word and punctuation tokens."""
    return TOKEN.findall(text.lower())


def _ngrams(words: Sequence[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))


def bleu(hypothesis: Sequence[str], references: Sequence[Sequence[str]], max_n: int = 4) -> float:
    """Sentence BLEU of ``hypothesis`` against several references (see module docstring)."""
    if not hypothesis or not references:
        return 0.0
    log_sum = 0.0
    for n in range(1, max_n + 1):
        hyp = _ngrams(hypothesis, n)
        total = sum(hyp.values())
        best: Counter[tuple[str, ...]] = Counter()
        for ref in references:
            best |= _ngrams(ref, n)
        matched = sum(min(count, best[gram]) for gram, count in hyp.items())
        if n == 1:
            if matched == 0:
                return 0.0
            precision = matched / total
        else:
            precision = (matched + 1) / (total + 1)
        log_sum += math.log(precision) / max_n
    length = len(hypothesis)
    closest = min((abs(len(r) - length), len(r)) for r in references)[1]
    penalty = 1.0 if length > closest else math.exp(1 - closest / length)
    return penalty * math.exp(log_sum)


def sample(texts: Sequence[str], cap: int, seed: int = 0) -> list[int]:
    """Indices of a seeded sample of at most ``cap`` texts, in their original order."""
    if len(texts) <= cap:
        return list(range(len(texts)))
    return sorted(random.Random(seed).sample(range(len(texts)), cap))


def self_bleu(texts: Sequence[str], max_n: int = 4) -> float | None:
    """Mean BLEU-4 of each text against all the others (None for fewer than 2 texts).

    Equal to averaging :func:`bleu` of each text against the rest, but linear in the number of
    n-grams: for every n-gram it keeps the two largest per-text counts and their owners, so the
    clipping count "max over the other texts" is read without looping over references.
    """
    if len(texts) < 2:
        return None
    tokenised = [tokens(t) for t in texts]
    grams = [[_ngrams(words, n) for n in range(1, max_n + 1)] for words in tokenised]
    top: list[dict[tuple[str, ...], tuple[int, int, int]]] = []  # gram -> (best, owner, second)
    for n in range(max_n):
        table: dict[tuple[str, ...], tuple[int, int, int]] = {}
        for owner, per_text in enumerate(grams):
            for gram, count in per_text[n].items():
                best, who, second = table.get(gram, (0, -1, 0))
                if count > best:
                    table[gram] = (count, owner, best)
                elif count > second:
                    table[gram] = (best, who, count)
        top.append(table)
    lengths = [len(words) for words in tokenised]
    scores: list[float] = []
    for i, words in enumerate(tokenised):
        if not words:
            scores.append(0.0)
            continue
        log_sum = 0.0
        for n in range(max_n):
            hyp = grams[i][n]
            total = sum(hyp.values())
            matched = 0
            for gram, count in hyp.items():
                best, who, second = top[n][gram]
                matched += min(count, second if who == i else best)
            if n == 0 and matched == 0:
                log_sum = -math.inf
                break
            precision = matched / total if n == 0 else (matched + 1) / (total + 1)
            log_sum += math.log(precision) / max_n
        if log_sum == -math.inf:
            scores.append(0.0)
            continue
        others = lengths[:i] + lengths[i + 1 :]
        closest = min((abs(r - lengths[i]), r) for r in others)[1]
        penalty = 1.0 if lengths[i] > closest else math.exp(1 - closest / lengths[i])
        scores.append(penalty * math.exp(log_sum))
    return sum(scores) / len(scores)


def distinct_n(texts: Sequence[str], n: int = 2) -> float | None:
    """Distinct n-grams / all n-grams over ``texts`` (None when there is no n-gram)."""
    grams: Counter[tuple[str, ...]] = Counter()
    for text in texts:
        grams.update(_ngrams(tokens(text), n))
    total = sum(grams.values())
    return len(grams) / total if total else None


def mean_pairwise_cosine(embeddings: npt.NDArray[np.float32]) -> float | None:
    """Mean off-diagonal cosine of unit vectors (None for fewer than 2)."""
    n = len(embeddings)
    if n < 2:
        return None
    total = embeddings.sum(axis=0)
    # sum over all pairs i != j of e_i . e_j = |sum e|^2 - sum |e_i|^2
    off_diagonal = float(total @ total) - float((embeddings * embeddings).sum())
    return off_diagonal / (n * (n - 1))
