"""Run only the explained rows of a sequence, with gradients, against a cache of the whole sequence.

For target rows at positions p_1 < ... < p_n of a sequence of T tokens whose keys and values are in a
:class:`~gradellm_cli.prefill.PrefixCache`, one forward pass of n query rows (token ``input_ids[p_s]``
at position id ``p_s``) is appended to the cache, under a mask that lets row s see exactly what it
sees in a plain forward pass of the whole sequence: the cached keys before p_s (within the sliding
window on sliding layers) and its own, freshly computed key. Rows never see each other, so each
row's outputs depend on its own residual stream only, and one backward pass of the sum of the rows'
target scalars gives every row its own gradient.

Key columns of the pass are ``T + n``: columns ``0..T-1`` are the cached positions, column ``T + s``
is row s itself (at position p_s). :func:`fold_columns` maps a (n, T + n) result back to positions.

The masks are transformers' own pre-built masks, which its models accept as they are: one additive
float mask of shape (1, 1, n, T + n), or a mapping ``{"full_attention": ..., "sliding_attention":
...}`` for models that mix layer kinds (Gemma-3). A model whose layers are of another kind (or that
has a sliding window but no per-layer kinds) is not supported here: :func:`row_masks` returns None
and the caller uses the full forward+backward instead.
"""

from __future__ import annotations

import torch

FULL, SLIDING = "full_attention", "sliding_attention"


def layer_kinds(config) -> list[str] | None:
    """Each decoder layer's attention kind, or None when the row masks cannot be built for this model."""
    config = config.get_text_config()
    kinds = getattr(config, "layer_types", None)
    if kinds is None:
        if getattr(config, "sliding_window", None) and getattr(config, "use_sliding_window", True):
            return None  # a window, but no record of which layers use it
        return [FULL] * config.num_hidden_layers
    if any(kind not in (FULL, SLIDING) for kind in kinds):
        return None
    return list(kinds)


def row_masks(config, positions: torch.Tensor, cache_length: int, dtype: torch.dtype, device) -> torch.Tensor | dict | None:
    """The additive masks of a rows pass (see the module doc); None when this model is not supported."""
    kinds = layer_kinds(config)
    if kinds is None:
        return None
    text_config = config.get_text_config()
    positions = positions.to(device)
    keys = torch.arange(cache_length, device=device)
    cached = keys[None, :] < positions[:, None]
    own = torch.eye(positions.numel(), dtype=torch.bool, device=device)
    masks = {}
    for kind in sorted(set(kinds)):
        visible = cached
        if kind == SLIDING:
            visible = cached & (positions[:, None] - keys[None, :] < text_config.sliding_window)
        allowed = torch.cat([visible, own], dim=1)
        additive = torch.zeros(allowed.shape, dtype=dtype, device=device).masked_fill(~allowed, torch.finfo(dtype).min)
        masks[kind] = additive[None, None]
    if len(masks) == 1:
        return next(iter(masks.values()))
    return masks


def fold_columns(values: torch.Tensor, positions: torch.Tensor, cache_length: int) -> torch.Tensor:
    """(n, T + n) per key column -> (n, T) per position: column T + s is added to position p_s of row s."""
    n = positions.numel()
    out = values[:, :cache_length].clone()
    rows = torch.arange(n, device=values.device)
    out[rows, positions.to(values.device)] += values[rows, cache_length + rows]
    return out


def head_logits(model, hidden: torch.Tensor, vocab_ids: torch.Tensor) -> torch.Tensor:
    """(n, k) logits of the vocabulary ids ``vocab_ids`` (n, k) from final hidden states (n, d).

    Only those rows of the LM head are used (Gemma-3's full head is 262k rows), followed by the
    final logit soft-capping where the model has it. A model whose head scales its logits otherwise
    makes the caller's check against the model's own logits fail, and the caller falls back.
    """
    head = model.get_output_embeddings()
    weight = head.weight[vocab_ids.to(head.weight.device)]  # (n, k, d)
    logits = torch.einsum("nd,nkd->nk", hidden.to(weight.dtype), weight)
    if getattr(head, "bias", None) is not None:
        logits = logits + head.bias[vocab_ids.to(head.weight.device)]
    cap = getattr(model.config.get_text_config(), "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits.float()
