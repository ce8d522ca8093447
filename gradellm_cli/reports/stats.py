"""Statistics for the reports: seeded percentile bootstrap intervals, a paired sign-flip test, ranks.

Everything is seeded from a base seed and the cell's names (``zlib.crc32``), so a table's numbers do
not depend on which other cells exist or the order they are computed in, and a rerun gives the same
intervals and p-values to the last digit.

The paired test is a sign-flip permutation test of the mean difference (two-sided): under the null
hypothesis that the two methods score each input equally well, the sign of each paired difference is
a coin flip. It needs no distributional assumption, like the Wilcoxon signed-rank test, and needs
only numpy (scipy is not a dependency). With up to ``EXACT_PAIRS`` pairs every sign pattern is
enumerated (an exact p-value); with more, ``resamples`` random patterns are drawn and
``p = (hits + 1) / (resamples + 1)``, which never reports 0. Each column's tests of Grad-ELLM against
the baselines are one family: the reports give Holm-adjusted p-values beside the raw ones.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

RESAMPLES = 1000  # bootstrap resamples per cell
PERMUTATIONS = 10000  # random sign patterns when the test is not exact
EXACT_PAIRS = 16  # 2**16 = 65536 patterns: exact and still instant
CONFIDENCE = 0.95


def cell_seed(seed: int, *names: object) -> int:
    """A seed for one cell: the base seed mixed with the cell's names, independent of other cells."""
    return zlib.crc32("\x1f".join(map(str, (seed, *names))).encode("utf-8"))


def bootstrap_ci(values: Sequence[float], seed: int, resamples: int = RESAMPLES, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (resampling records with replacement)."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(resamples, data.size))].mean(axis=1)
    return _percentiles(means, confidence)


def bootstrap_ci_of_means(groups: Sequence[Sequence[float]], seed: int, resamples: int = RESAMPLES,
                          confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Interval of the average of per-group means (a table's "average over data sets" column): each
    group is resampled on its own, as each data set is its own sample of inputs."""
    arrays = [np.asarray(group, dtype=float) for group in groups]
    if not arrays or any(a.size == 0 for a in arrays):
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = np.mean([a[rng.integers(0, a.size, size=(resamples, a.size))].mean(axis=1) for a in arrays], axis=0)
    return _percentiles(means, confidence)


def _percentiles(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(samples, [tail, 100.0 - tail])
    return (float(low), float(high))


def paired_sign_flip_test(first: Sequence[float], second: Sequence[float], seed: int, resamples: int = PERMUTATIONS) -> float:
    """Two-sided p-value that ``first`` and ``second`` (paired, same order) have the same mean."""
    differences = np.asarray(first, dtype=float) - np.asarray(second, dtype=float)
    if differences.size == 0:
        return float("nan")
    observed = abs(differences.mean())
    if np.allclose(differences, 0.0):
        return 1.0
    signs = _all_sign_patterns(differences.size) if differences.size <= EXACT_PAIRS else None
    if signs is not None:
        flipped = np.abs(signs @ differences) / differences.size
        return float(np.mean(flipped >= observed - 1e-12))
    rng = np.random.default_rng(seed)
    hits = 0
    for start in range(0, resamples, 1000):  # chunks keep memory small for long inputs
        count = min(1000, resamples - start)
        chunk = rng.choice((-1.0, 1.0), size=(count, differences.size))
        hits += int(np.sum(np.abs(chunk @ differences) / differences.size >= observed - 1e-12))
    return (hits + 1) / (resamples + 1)


def holm_adjusted(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of a family of p-values (Grad-ELLM against every baseline on one
    column), in the given order: the i-th smallest p is multiplied by (m - i + 1), kept monotone and
    capped at 1. Rejecting where the adjusted p < alpha holds the family-wise error rate at alpha, with
    no assumption about how the tests depend on each other (they share Grad-ELLM's scores)."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [0.0] * len(p_values)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def _all_sign_patterns(n: int) -> np.ndarray:
    """Every vector in {-1, +1}^n, one per row."""
    bits = (np.arange(2**n)[:, None] >> np.arange(n)[None, :]) & 1
    return 1.0 - 2.0 * bits


def competition_ranks(values: Sequence[float], higher_is_better: bool) -> list[int | None]:
    """1 for the best value, ties share a rank ("1, 1, 3"); NaN gets None."""
    ranked: list[int | None] = []
    for value in values:
        if value != value:  # NaN
            ranked.append(None)
            continue
        better = sum(1 for other in values if other == other and (other > value if higher_is_better else other < value))
        ranked.append(better + 1)
    return ranked
