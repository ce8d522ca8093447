"""Random baseline: independent uniform scores in [0, 1) for every position up to the target.

Seeded by ``options.seed``, the record id and the step through ``zlib.crc32`` (stable across runs
and machines, unlike Python's salted ``hash()``), drawn with a CPU ``torch.Generator``, so the same
seed, record and step always give the same scores on any device. Positions after the target get 0.
No forward or backward pass.
"""

from __future__ import annotations

import zlib

import torch

from . import register
from .base import Method, MethodOptions, Targets, zero_after_targets


def random_seed(seed: int, record_id: str, step: int) -> int:
    """A stable 32-bit seed for one (seed, record, step)."""
    return zlib.crc32(f"{seed}\x1f{record_id}\x1f{step}".encode())


@register
class RandomMethod(Method):
    name = "random"
    description = "Random: uniform scores in [0, 1), seeded by --seed, the record id and the step"

    def config(self, options: MethodOptions) -> dict:
        return {"seed": options.seed}

    def attribute(self, model, targets: Targets, options: MethodOptions) -> torch.Tensor:
        length = targets.input_ids.numel()
        rows = [
            torch.rand(length, generator=torch.Generator().manual_seed(random_seed(options.seed, targets.record_id, step)))
            for step in range(targets.steps)
        ]
        scores = torch.stack(rows) if rows else torch.zeros(0, length)
        return zero_after_targets(scores, targets.positions).float()
