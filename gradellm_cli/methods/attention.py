"""Attention baseline: the last layer's attention weights from the target position, averaged over heads.

``--attention-layers all`` averages the rows of every layer instead (inseq 0.7's default); ``last``,
the paper's text, is the default.

The model runs with gradellm's capturing attention (SDPA underneath, which never materialises the
attention matrix), so the row is recomputed from what the last layer saw: the post-rotary query row
of the target position and all keys, softmax(scaling * q . k) over the key positions that row may
attend to (the model's own mask: causal, plus the sliding window on sliding layers; Gemma-2 style
logit soft-capping where the model has it), with grouped-query heads using their key/value group.
That is exactly the model's attention row (a test compares it with the eager model's
``output_attentions``). One forward pass over the whole sequence serves every step: causal
attention makes row p independent of the tokens after p. No options, no backward pass.
"""

from __future__ import annotations

import torch

from ..capture import Capture, LayerCapture
from ..errors import BadInput
from . import register
from .base import Method, MethodOptions, Targets

ATTENTION_LAYERS = ("last", "all")


def attention_row(layer: LayerCapture, row: int) -> torch.Tensor:
    """The layer's attention weights (heads, T) of captured row ``row``; positions it cannot see get 0."""
    keys = layer.keys.repeat_interleave(layer.kv_group, dim=0)  # query head h uses kv head h // group
    logits = torch.einsum("hd,htd->ht", layer.query_rows[:, row].float(), keys.float()) * layer.scaling
    if layer.softcap is not None:
        logits = torch.tanh(logits / layer.softcap) * layer.softcap
    visible = layer.visible[row][None, :].expand_as(logits)
    return torch.softmax(logits.masked_fill(~visible, float("-inf")), dim=-1)


@register
class AttentionMethod(Method):
    name = "attention"
    description = "Attention: the last layer's (or every layer's) attention weights from the target position, averaged over heads"

    def config(self, options: MethodOptions) -> dict:
        return {"attention_layers": options.attention_layers}

    def check(self, options: MethodOptions) -> None:
        if options.attention_layers not in ATTENTION_LAYERS:
            raise BadInput(f"unknown `attention_layers` {options.attention_layers!r}: use last or all")

    @torch.no_grad()
    def attribute(self, model, targets: Targets, options: MethodOptions) -> torch.Tensor:
        device = model.get_input_embeddings().weight.device
        with Capture(rows=targets.positions) as capture:
            model(input_ids=targets.input_ids[None].to(device), use_cache=False, logits_to_keep=1)
        if not capture.layers:
            raise BadInput("the attention method needs the model loaded with gradellm's capturing attention (the default)")
        if options.attention_layers not in ATTENTION_LAYERS:
            raise BadInput(f"unknown `attention_layers` {options.attention_layers!r}: use last or all")
        layers = [max(capture.layers)] if options.attention_layers == "last" else sorted(capture.layers)
        rows = [torch.stack([attention_row(capture.layers[k], step).mean(dim=0) for step in range(targets.steps)]) for k in layers]
        return torch.stack(rows).mean(dim=0).float().cpu()
