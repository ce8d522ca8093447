"""The pi transform of pi-Soft-NC/NS (paper eq. 20): ``s -> s**alpha`` with ``mean(s**alpha) = pi``.

Before the transform the scores are squeezed into ``[eps, 1 - eps]``:
``s <- eps + (1 - 2 eps) s`` (eps = 1e-6). The floor is the method notes' (zero scores would stay
zero for every alpha, so a sparse vector could not reach a large pi). The ceiling is ours: the
top-scored token has ``s = 1`` after max-normalisation, and ``1**alpha = 1`` for every alpha, so
with the floor alone any pi below ``(number of tokens tied at the max) / m`` is unreachable (every
pi below 1/m for a short input, every pi below 1 for uniform scores). With the ceiling every pi in
(0, 1) is reachable, as the paper assumes (``s_i in [0, 1)``); elsewhere the two differ by ~1e-6.

alpha is found by bisection on ``log(alpha)`` (``mean(s**alpha)`` falls strictly as alpha grows);
the achieved mean is returned with it and always lies within ``tol`` (1e-4) of pi.
"""

from __future__ import annotations

import numpy as np

from .errors import MetricError

EPS = 1e-6
SQUEEZE = "eps + (1 - 2 eps) s"  # written into each metric record's config (the notes have 1 - eps)
TOLERANCE = 1e-4
_LOG_ALPHA_RANGE = (-40.0, 40.0)
_ITERATIONS = 200


def squeeze(scores: np.ndarray, eps: float = EPS) -> np.ndarray:
    """``eps + (1 - 2 eps) * s``: scores in [0, 1] mapped into [eps, 1 - eps]."""
    return eps + (1.0 - 2.0 * eps) * np.asarray(scores, dtype=np.float64)


def solve_alpha(squeezed: np.ndarray, pi: float, tol: float = TOLERANCE) -> tuple[float, float]:
    """alpha >= 0 with ``mean(squeezed**alpha)`` within ``tol`` of ``pi``; returns (alpha, achieved mean).

    ``squeezed`` must lie in (0, 1). pi = 1 gives alpha = 0.
    """
    if not 0.0 < pi <= 1.0:
        raise MetricError(f"target pi {pi} is outside (0, 1]")
    logs = np.log(squeezed)
    if pi == 1.0:
        return 0.0, 1.0

    def mean_at(log_alpha: float) -> float:
        return float(np.exp(np.exp(log_alpha) * logs).mean())

    low, high = _LOG_ALPHA_RANGE  # mean_at(low) ~ 1 > pi > mean_at(high) ~ 0
    for _ in range(_ITERATIONS):
        middle = 0.5 * (low + high)
        achieved = mean_at(middle)
        if abs(achieved - pi) <= tol * 1e-3:
            break
        if achieved > pi:
            low = middle
        else:
            high = middle
    alpha = float(np.exp(middle))
    achieved = mean_at(middle)
    if abs(achieved - pi) > tol:
        raise MetricError(f"no alpha brings the mean score to pi = {pi} (closest {achieved:.6f})")
    return alpha, achieved


def pi_transform(scores: np.ndarray, pi: float, eps: float = EPS, tol: float = TOLERANCE) -> tuple[np.ndarray, float, float]:
    """Keep-probabilities with mean pi from normalised scores; returns (probabilities, alpha, achieved mean)."""
    squeezed = squeeze(scores, eps)
    alpha, achieved = solve_alpha(squeezed, pi, tol)
    return squeezed**alpha, alpha, achieved
