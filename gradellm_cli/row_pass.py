"""Run only the explained rows of a sequence, with gradients, against a cache of the sequence.

For target rows at positions p_1 < ... < p_n of a sequence whose first ``C`` positions have their keys
and values in a :class:`~gradellm_cli.prefill.PrefixCache`, one forward pass of n query rows (token
``input_ids[p_s]`` at position id ``p_s``) is appended to the cache, under a mask that lets row s see
exactly what it sees in a plain forward pass of the whole sequence: the cached keys before p_s (within
the sliding window on sliding layers), its own, freshly computed key, and the keys of the earlier rows
that lie beyond the cache (p_r >= C), which this pass computes itself. Each row's outputs depend on its
own residual stream only as long as the other rows' keys and values enter its attention without
gradient (:func:`rows_attention` does that), and one backward pass of the sum of the rows' target
scalars then gives every row its own gradient.

Usually the cache holds the whole sequence (C = T, the explain pipeline's cache), and rows never see
each other. A cache that stops at the first row (C = p_1 + 1, the rows contiguous after it) saves the
fill n - 1 positions that the rows pass computes anyway.

Key columns of the pass are ``C + n``: columns ``0..C-1`` are the cached positions, column ``C + s``
is row s (at position p_s). :func:`fold_columns` maps a (n, C + n) result back to positions.

The attention of the pass is :func:`rows_attention` (registered through :mod:`~gradellm_cli.capture`
while a :class:`~gradellm_cli.capture.RowsPass` is active): the same outputs as SDPA on these masks,
with no gradient computed towards any column but each row's own.

The masks are transformers' own pre-built masks, which its models accept as they are: one additive
float mask of shape (1, 1, n, C + n), or a mapping ``{"full_attention": ..., "sliding_attention":
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
    n = positions.numel()
    own = torch.eye(n, dtype=torch.bool, device=device)
    # earlier rows beyond the cache: their keys exist only in this pass
    uncached = (positions[None, :] >= cache_length) & (positions[None, :] < positions[:, None])
    masks = {}
    for kind in sorted(set(kinds)):
        visible, rows = cached, uncached
        if kind == SLIDING:
            window = text_config.sliding_window
            visible = cached & (positions[:, None] - keys[None, :] < window)
            rows = uncached & (positions[:, None] - positions[None, :] < window)
        masks[kind] = _additive(torch.cat([visible, rows | own], dim=1), dtype)[None, None]
    if len(masks) == 1:
        return next(iter(masks.values()))
    return masks


def _additive(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A boolean mask as transformers' additive float one: 0 where allowed, the dtype's minimum elsewhere."""
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(~allowed, torch.finfo(dtype).min)


def fold_columns(values: torch.Tensor, positions: torch.Tensor, cache_length: int, length: int | None = None) -> torch.Tensor:
    """(n, C + n) per key column -> (n, length) per position: column C + r is added to position p_r.

    ``length`` defaults to C (the cache holds the whole sequence). Columns a row cannot see hold 0.
    """
    out = values.new_zeros(values.shape[0], length or cache_length)
    out[:, :cache_length] = values[:, :cache_length]
    return out.index_add_(1, positions.to(values.device), values[:, cache_length:])


def head_logits(model, hidden: torch.Tensor, vocab_ids: torch.Tensor) -> torch.Tensor:
    """(n, k) logits of the vocabulary ids ``vocab_ids`` (n, k) from final hidden states (n, d).

    Only those rows of the LM head are used (Gemma-3's full head is 262k rows), followed by the
    final logit soft-capping where the model has it. A model whose head scales its logits otherwise
    makes the caller's check against the model's own logits fail, and the caller falls back.
    """
    head = model.get_output_embeddings()
    weight = head.weight[vocab_ids.to(head.weight.device)]  # (n, k, d)
    logits = torch.einsum("nd,nkd->nk", hidden.to(device=weight.device, dtype=weight.dtype), weight)
    if getattr(head, "bias", None) is not None:
        logits = logits + head.bias[vocab_ids.to(head.weight.device)]
    cap = getattr(model.config.get_text_config(), "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits.float()


def rows_attention(query, key, value, attention_mask, scaling: float, softcap: float | None, cache_length: int,
                   rows_see_rows: bool = False) -> torch.Tensor:
    """The attention of a rows pass, (b, n, heads, head_dim), with gradients towards each row's own column only.

    The result equals SDPA's on the same mask. What differs is the backward pass: SDPA returns
    gradients for all ``C + n`` key and value columns, and the ``C`` cached ones are thrown away
    afterwards (they come from the no-grad fill), which costs about as much as the gradient of the
    queries. Here the other columns enter the graph detached and row s's own column (``C + s``) as one
    extra logit, so the backward pass computes the queries' gradient and the own keys' and values'
    only. ``rows_see_rows``: rows also see earlier rows beyond the cache (:func:`row_masks`); their
    columns are then among the detached ones, which is what keeps each row's gradient its own. Softmax
    in float32 at least, as transformers' eager attention; ``softcap`` as Gemma-2's.
    """
    batch, heads, rows, width = query.shape
    kv_heads = key.shape[1]
    group = heads // kv_heads
    others = cache_length + rows if rows_see_rows else cache_length  # the detached columns
    # (b, kv_heads, group * n, d): each key/value head's query rows side by side, so the products with the
    # detached columns are plain batched matrix products (a broadcast one would copy the keys per head)
    grouped = query.view(batch, kv_heads, group, rows, width)
    stacked = grouped.reshape(batch, kv_heads, group * rows, width)
    other_keys, other_values = key[:, :, :others].detach(), value[:, :, :others].detach()
    own_keys, own_values = key[:, :, None, cache_length:], value[:, :, None, cache_length:]  # (b, kv_heads, 1, n, d)
    own = (grouped * own_keys).sum(-1, keepdim=True)  # (b, kv_heads, group, n, 1)
    detached = torch.matmul(stacked, other_keys.transpose(-1, -2)).view(batch, kv_heads, group, rows, others)
    logits = torch.cat([detached, own], dim=-1).to(torch.promote_types(query.dtype, torch.float32)) * scaling
    if softcap is not None:
        logits = torch.tanh(logits / softcap) * softcap
    logits = logits + _rows_mask(attention_mask, rows, cache_length, others, logits.dtype)
    weights = torch.softmax(logits, dim=-1).to(value.dtype)
    from_others = torch.matmul(weights[..., :others].reshape(batch, kv_heads, group * rows, others), other_values)
    output = from_others.view(batch, kv_heads, group, rows, width) + weights[..., others:] * own_values
    return output.view(batch, heads, rows, width).transpose(1, 2).contiguous()


def _rows_mask(attention_mask: torch.Tensor, rows: int, cache_length: int, others: int, dtype: torch.dtype) -> torch.Tensor:
    """(1 or b, 1, 1, n, others + 1) additive: the mask's first ``others`` columns (each row's own column
    among them closed), then each row's own column."""
    mask = attention_mask[..., : cache_length + rows]
    if mask.dtype == torch.bool:
        mask = _additive(mask, dtype)
    index = torch.arange(rows, device=mask.device)
    own = mask[:, :, index, cache_length + index]  # (b, 1, n): the diagonal of the own block
    detached = mask[..., :others].to(dtype)
    if others > cache_length:  # the own columns are among the detached ones: closed there, counted once
        detached = detached.clone()
        detached[:, :, index, cache_length + index] = torch.finfo(dtype).min
    return torch.cat([detached, own[..., None].to(dtype)], dim=-1)[:, :, None]
