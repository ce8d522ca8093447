"""Which source tokens each perturbation keeps: seeded Bernoulli draws and deterministic rankings.

A mask is a bool tensor over the source tokens, shape ``(m,)`` (one draw per token) or ``(m, d)``
(one draw per embedding element, ``mask_unit="element"``); ``True`` keeps the embedding, ``False``
replaces it with zeros. Template tokens and the generated prefix are never in a mask.

Randomness: one CPU ``torch.Generator`` per record, seeded from (seed, id, model, step) with
``zlib.crc32``; masks are drawn in one fixed order, so results do not depend on batch size or on
which engine runs them. The method is deliberately *not* in the seed: every method of the same
input and step is scored with the same uniform draws ``u`` (a mask keeps token i iff ``u_i < p_i``),
common random numbers that make differences between methods reflect their scores, not the noise.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .settings import STEPS, UNITS  # noqa: F401 - re-exported


@dataclass(frozen=True)
class Fixed:
    """A mask decided by the caller (all kept, all removed, the top-k tokens...)."""

    keep: torch.Tensor  # (m,) bool


@dataclass(frozen=True)
class Bernoulli:
    """Keep each token (or each of its embedding elements) independently with probability ``prob[i]``."""

    prob: torch.Tensor  # (m,) float64


MaskSpec = Fixed | Bernoulli


def mask_seed(seed: int, record_id: str, model: str, step: int) -> int:
    """A stable 32-bit generator seed for one record (method left out on purpose, see the module doc)."""
    return zlib.crc32(f"gradellm-evaluate\x1f{seed}\x1f{record_id}\x1f{model}\x1f{step}".encode())


def draw(specs: Sequence[MaskSpec], generator: torch.Generator, unit: str, hidden: int) -> Iterator[torch.Tensor]:
    """The masks of ``specs`` in order; Bernoulli draws consume ``generator``, fixed masks do not."""
    if unit not in UNITS:
        raise ValueError(f"mask unit must be one of {UNITS}")
    for spec in specs:
        if isinstance(spec, Fixed):
            yield spec.keep
            continue
        prob = spec.prob
        if unit == "token":
            yield torch.rand(prob.shape, generator=generator, dtype=torch.float64) < prob
        else:
            yield torch.rand((prob.shape[0], hidden), generator=generator, dtype=torch.float64) < prob[:, None]


def ranking(scores: np.ndarray) -> np.ndarray:
    """Source-token indices from the highest score down; ties go to the earlier token."""
    return np.argsort(-scores, kind="stable")


def step_counts(m: int, steps: int = STEPS) -> list[int]:
    """Tokens removed (Deletion) or restored (Insertion) at steps j = 1..steps.

    ``k_j = floor(j * m / steps + 1/2)``, i.e. ``j * 5%`` of the m source tokens rounded half up,
    computed in integers (no float rounding): k_20 = m, and for m < 20 some steps share a k
    (k_1 = 0 when m < 10).
    """
    return [(2 * j * m + steps) // (2 * steps) for j in range(1, steps + 1)]


def top_k_mask(order: np.ndarray, k: int, keep_top: bool) -> torch.Tensor:
    """Keep only the top-k tokens (``keep_top``) or everything except them."""
    keep = torch.full((order.size,), not keep_top, dtype=torch.bool)
    keep[torch.from_numpy(order[:k].copy())] = keep_top
    return keep
