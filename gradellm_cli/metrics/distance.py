"""The Hellinger distance between next-token distributions over the whole vocabulary (paper eq. 16)."""

from __future__ import annotations

import math

import torch


def hellinger(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """``(1/sqrt 2) * || sqrt(p) - sqrt(q) ||_2`` over the last dimension; in [0, 1] for distributions.

    Computed as the norm of the difference (not as ``sqrt(1 - sum sqrt(p q))``), which keeps small
    distances accurate.
    """
    return torch.linalg.vector_norm(p.sqrt() - q.sqrt(), dim=-1) / math.sqrt(2.0)


def probabilities(logits: torch.Tensor) -> torch.Tensor:
    """Softmax in float64 of (float32) logits."""
    return torch.softmax(logits.double(), dim=-1)
