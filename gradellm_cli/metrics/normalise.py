"""Source scores divided by their maximum: the ``s_i`` in [0, 1] every metric starts from."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .errors import MetricError


def source_positions(source_mask: Sequence[bool]) -> np.ndarray:
    """Indices of the source tokens (the user's text) before the explained row, ascending.

    The record's last position is the row whose next-token prediction is explained: its own token is
    where the prediction is read, not context, so it is never perturbed nor scored, whatever the
    model. Behind a chat template it is always template; in a plain-text prompt without one (Gemma-3
    base) it can be the user's last token, at a generation's first step.
    """
    flags = np.asarray(source_mask, dtype=bool)
    positions = np.flatnonzero(flags[:-1])
    if positions.size == 0:
        raise MetricError("the record has no source tokens before the explained position to score or perturb")
    return positions


def normalise_scores(scores: Sequence[float], source_mask: Sequence[bool]) -> np.ndarray:
    """The source tokens' scores divided by their maximum, as float64 in [0, 1].

    Only source tokens count: template and generated-prefix scores are ignored. Scores must be
    finite and non-negative with a positive maximum; anything else raises :class:`MetricError`
    (an all-zero vector says nothing about importance, and a signed one is not a keep-probability).
    """
    values = np.asarray(scores, dtype=np.float64)[source_positions(source_mask)]
    if not np.isfinite(values).all():
        raise MetricError("scores hold NaN or infinite values")
    if (values < 0).any():
        raise MetricError(f"scores hold negative values (min {values.min():.3g}); metrics need non-negative importance scores")
    peak = values.max()
    if peak <= 0:
        raise MetricError("all source scores are zero, so they cannot be normalised")
    return values / peak
