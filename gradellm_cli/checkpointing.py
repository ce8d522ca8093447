"""Gradient checkpointing for long inputs, without putting any part of the model in training mode.

Grad-ELLM's backward pass needs every layer's activations; on a 4,000-token input that is several GB.
Instead, each decoder layer's forward pass runs under ``torch.utils.checkpoint`` and is recomputed
during the backward pass. We wrap the layer's ``forward`` ourselves rather than use transformers' own
switch (``GradientCheckpointingLayer``), because that one acts only when ``layer.training`` is set,
and some decoder layers (OPT, BioGPT, XGLM, Falcon, ...) apply dropout with ``training=self.training``
of the layer itself: with the flag set, their scores became random. Every module stays in eval mode,
so the layers compute exactly what they compute without checkpointing. Cost: one extra forward pass
per backward pass.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial

import torch
from torch.utils.checkpoint import checkpoint

# Inputs longer than this are explained with checkpointing when the option is "auto".
AUTO_CHECKPOINT_TOKENS = 1024


def wants_checkpointing(mode: str, length: int) -> bool:
    return mode == "on" or (mode == "auto" and length > AUTO_CHECKPOINT_TOKENS)


@contextmanager
def checkpointed_layers(model: torch.nn.Module, enabled: bool = True) -> Iterator[None]:
    """Recompute each decoder layer in the backward pass instead of storing its activations.

    The layer's current ``forward`` (its own, or one that accelerate's offloading hooks put on the
    instance) is wrapped, and put back as it was on exit.
    """
    from transformers.modeling_layers import GradientCheckpointingLayer

    layers = [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer)] if enabled else []
    saved = [layer.__dict__.get("forward") for layer in layers]
    for layer in layers:
        layer.forward = partial(checkpoint, layer.forward, use_reentrant=False)
    try:
        yield
    finally:
        for layer, forward in zip(layers, saved):
            if forward is None:
                layer.__dict__.pop("forward", None)
            else:
                layer.forward = forward
