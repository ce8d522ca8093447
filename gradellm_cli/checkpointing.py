"""Gradient checkpointing for long inputs, without putting the model in training mode.

Grad-ELLM's backward pass needs every layer's activations; on a 4,000-token input that is several GB.
transformers' decoder layers can recompute their forward pass during backward instead
(``GradientCheckpointingLayer``), but only when ``layer.training`` is set. We set that flag on the
decoder-layer objects alone, so their children (attention, dropout) stay in eval mode and compute
exactly what they compute without checkpointing. Cost: one extra forward pass per backward pass.
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
    """Recompute each decoder layer in the backward pass instead of storing its activations."""
    from transformers.modeling_layers import GradientCheckpointingLayer

    layers = [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer)] if enabled else []
    saved = [(m.gradient_checkpointing, m.training, m.__dict__.get("_gradient_checkpointing_func")) for m in layers]
    for layer in layers:
        layer.gradient_checkpointing = True
        layer._gradient_checkpointing_func = partial(checkpoint, use_reentrant=False)
        layer.training = True  # the flag only: children keep their own (eval) mode
    try:
        yield
    finally:
        for layer, (flag, training, func) in zip(layers, saved):
            layer.gradient_checkpointing, layer.training = flag, training
            if func is None:
                layer.__dict__.pop("_gradient_checkpointing_func", None)
            else:
                layer._gradient_checkpointing_func = func
