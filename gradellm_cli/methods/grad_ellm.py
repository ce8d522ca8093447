"""Grad-ELLM (Huang & Chan, arXiv 2601.03089, section 3.2), as fixed by the method notes.

For target logit l at position t and each selected layer k:
  w      = d l / d o_t            channel weights: gradient at the attention output before o_proj
  lam_i  = minmax_i(q_t . k_i)    token weights per head over the positions the head sees from t
  H_i^k  = ReLU( sum_h sum_d w[h,d] * lam_i^h * v_i^h[d] )
and H_i = sum_k H_i^k. One forward pass over the whole sequence serves every step; each step then
takes one backward pass to the captured attention outputs only (the weights need no gradient).
"""

from __future__ import annotations

from functools import partial

import torch

from ..capture import Capture, LayerCapture
from ..checkpointing import checkpointed_layers, wants_checkpointing
from ..errors import BadInput
from . import register
from .base import Method, MethodOptions, Targets, input_embeddings

ATTENTION_MODES = ("loosened", "softmax")


def select_layers(spec: str, n_layers: int) -> list[int]:
    """Parse ``--layers``: ``all``, ``last:N`` (the last N layers) or a list such as ``0,5,-1``."""
    spec = spec.strip()
    if spec == "all":
        return list(range(n_layers))
    if spec.startswith("last:"):
        count = _int(spec[5:], spec)
        if not 1 <= count <= n_layers:
            raise BadInput(f"--layers {spec}: the model has {n_layers} layers")
        return list(range(n_layers - count, n_layers))
    chosen = []
    for part in spec.split(","):
        index = _int(part, spec)
        if not -n_layers <= index < n_layers:
            raise BadInput(f"--layers {spec}: layer {index} does not exist (the model has {n_layers})")
        chosen.append(index % n_layers)
    return sorted(set(chosen))


def _int(text: str, spec: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise BadInput(f"--layers {spec!r}: use all, last:N or a comma-separated list of layer numbers") from None


def _per_head(vectors: torch.Tensor, kv_vectors: torch.Tensor, group: int) -> torch.Tensor:
    """(heads, D) . (kv_heads, T, D) -> (heads, T), query head h paired with kv head h // group.

    This is the grouped-query mapping of transformers' ``repeat_kv``, without copying keys or values.
    """
    heads, dim = vectors.shape
    grouped = vectors.float().reshape(heads // group, group, dim)
    return torch.einsum("kgd,ktd->kgt", grouped, kv_vectors.float()).reshape(heads, -1)


def token_weights(layer: LayerCapture, row: int, attention: str) -> torch.Tensor:
    """lambda (heads, T) for captured row ``row``: min-max or softmax of q.k over visible keys, 0 elsewhere."""
    sims = _per_head(layer.query_rows[:, row], layer.keys, layer.kv_group)
    visible = layer.visible[row][None, :].expand_as(sims)
    if attention == "softmax":
        logits = sims * layer.scaling
        if layer.softcap is not None:
            logits = torch.tanh(logits / layer.softcap) * layer.softcap
        return torch.softmax(logits.masked_fill(~visible, float("-inf")), dim=-1)
    low = sims.masked_fill(~visible, float("inf")).amin(dim=-1, keepdim=True)
    high = sims.masked_fill(~visible, float("-inf")).amax(dim=-1, keepdim=True)
    span = high - low
    # A head that sees a single key (or identical similarities) has nothing to rank: weight 1 each.
    normalised = torch.where(span > 0, (sims - low) / span.clamp_min(torch.finfo(sims.dtype).tiny), 1.0)
    return normalised.masked_fill(~visible, 0.0)


def layer_heatmap(layer: LayerCapture, row: int, channel_weights: torch.Tensor, attention: str) -> torch.Tensor:
    """H^(k) (T,) = ReLU(sum_h lambda_i^h * (w_h . v_i^h)) for one layer and one captured row."""
    projected = _per_head(channel_weights, layer.values, layer.kv_group)
    return torch.relu((token_weights(layer, row, attention) * projected).sum(dim=0))


@register
class GradELLM(Method):
    name = "grad-ellm"
    description = "Grad-ELLM: d logit/d attention-output channel weights x loosened q.k token weights x values, ReLU, summed over layers"

    def config(self, options: MethodOptions) -> dict:
        # checkpointing changes memory and time, never the numbers, so it is not part of the config
        return {"layers": options.layers, "attention": options.attention}

    def attribute(self, model, targets: Targets, options: MethodOptions) -> torch.Tensor:
        if options.attention not in ATTENTION_MODES:
            raise BadInput(f"unknown --attention {options.attention!r}: use loosened or softmax")
        layers = select_layers(options.layers, model.config.get_text_config().num_hidden_layers)
        long_input = wants_checkpointing(options.checkpoint, targets.input_ids.numel())
        with checkpointed_layers(model, enabled=long_input):
            capture, logits = forward_with_capture(model, targets)
            rows = {}
            for k in layers:  # keep only the target rows of each gradient, never the full (T, H, D) tensor
                capture.layers[k].output.register_hook(partial(_keep_rows, rows, k, targets.positions))
            earliest = capture.layers[layers[0]].output
            scores = torch.zeros(targets.steps, targets.input_ids.numel())
            for step in range(targets.steps):
                torch.autograd.grad(logits[step], [earliest], retain_graph=step < targets.steps - 1)
                # .to(): with --device map:auto the layers may sit on several devices
                heatmap = sum(layer_heatmap(capture.layers[k], step, rows[k][step], options.attention).to(earliest.device) for k in layers)
                scores[step] = heatmap.detach().cpu()
        return scores


def _keep_rows(store: dict, layer: int, positions: torch.Tensor, grad: torch.Tensor) -> None:
    store[layer] = grad[0, positions.to(grad.device)].detach()


def forward_with_capture(model, targets: Targets) -> tuple[Capture, torch.Tensor]:
    """One forward over the whole sequence, capturing every layer; return the capture and the target logits.

    The input embeddings are made a gradient leaf so that the graph reaches every attention output,
    while the weights (requires_grad off) cost nothing in the backward pass. Only the logits of the
    target positions are computed (``logits_to_keep``), which matters for long inputs.
    """
    embeds = input_embeddings(model, targets.input_ids).detach().requires_grad_(True)
    first = int(targets.positions.min())
    keep = targets.input_ids.numel() - first
    with Capture(rows=targets.positions) as capture:
        logits = model(inputs_embeds=embeds, use_cache=False, logits_to_keep=keep).logits[0]
    rows = (targets.positions - first).to(logits.device)
    return capture, logits[rows, targets.target_ids.to(logits.device)]
