"""Grad-ELLM's per-layer heatmap from what one layer captured, under each of the method's choices.

    H_i^(k) = ReLU( sum_h lambda_i^h * (w_h . v_{m(h), i}) )

* ``w`` (heads, head_dim): the channel weights, the gradient of the target logit at the attention
  output, before o_proj (``pre-o``, the paper's text) or after it (``post-o``, the authors' code;
  the hidden vector read as heads x head_dim, so only where that is the hidden size).
* ``m(h)``: the key/value head query head h uses: ``grouped`` (h // group, the model's own
  grouped-query mapping, as transformers' ``repeat_kv``) or ``tiled`` (h mod kv_heads: the whole
  flattened key/value vector repeated, as the authors' code expands it).
* ``lambda``: ``rope-qk`` (the paper's text): per head, ``q_t . k_i`` after rotary embedding,
  min-max over the positions the head sees (1 each where they are all equal), or softmax with
  ``--attention softmax``; ``raw-cosine`` (the authors' code): one weight per position for all heads,
  the cosine similarity between the raw q_proj and k_proj outputs (before any norm or rotary
  embedding; keys expanded to the query width by ``m``), min-max over the visible positions, 0 where
  they are all equal. Positions a head cannot see get 0 either way.

Internally every (rows, heads) quantity is laid out (kv_heads, rows, group, T), the order a batched
product over key/value heads writes, so keys and values are never copied per query head.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..capture import LayerCapture

SIMILARITIES = ("rope-qk", "raw-cosine")
GRAD_AT = ("pre-o", "post-o")
KV_EXPANSIONS = ("grouped", "tiled")


@dataclass(frozen=True)
class Semantics:
    """The four choices (with ``attention``'s min-max or softmax) that decide what Grad-ELLM computes."""

    attention: str = "loosened"
    similarity: str = "rope-qk"
    grad_at: str = "pre-o"
    kv_expansion: str = "grouped"


def _grouped(vectors: torch.Tensor, group: int, expansion: str) -> torch.Tensor:
    """(n, heads, D) -> (kv_heads, n, group, D): query head h placed beside its key/value head m(h)."""
    rows, heads, dim = vectors.shape
    kv_heads = heads // group
    if expansion == "grouped":  # h = k * group + g
        return vectors.reshape(rows, kv_heads, group, dim).permute(1, 0, 2, 3)
    return vectors.reshape(rows, group, kv_heads, dim).permute(2, 0, 1, 3)  # tiled: h = g * kv_heads + k


def _to_heads(layout: torch.Tensor, expansion: str) -> torch.Tensor:
    """(kv_heads, n, group, T) -> (n, heads, T) in the query heads' own order (the inverse of :func:`_grouped`)."""
    kv_heads, rows, group, length = layout.shape
    order = (1, 0, 2, 3) if expansion == "grouped" else (1, 2, 0, 3)
    return layout.permute(*order).reshape(rows, kv_heads * group, length)


def _per_head(vectors: torch.Tensor, kv_vectors: torch.Tensor, group: int, expansion: str = "grouped") -> torch.Tensor:
    """(n, heads, D) . (kv_heads, T, D) -> (kv_heads, n, group, T): each query head with its key/value head."""
    grouped = _grouped(vectors.float(), group, expansion)
    kv_heads, rows, _, dim = grouped.shape
    products = torch.bmm(grouped.reshape(kv_heads, rows * group, dim), kv_vectors.float().transpose(1, 2))
    return products.view(kv_heads, rows, group, -1)


def _minmax(values: torch.Tensor, visible: torch.Tensor, constant: float) -> torch.Tensor:
    """Min-max of ``values`` along the last dimension over ``visible``; ``constant`` where all are equal; 0 where invisible."""
    low = values.masked_fill(~visible, float("inf")).amin(dim=-1, keepdim=True)
    high = values.masked_fill(~visible, float("-inf")).amax(dim=-1, keepdim=True)
    span = high - low
    normalised = torch.where(span > 0, (values - low) / span.clamp_min(torch.finfo(values.dtype).tiny), constant)
    return normalised.masked_fill(~visible, 0.0)


def _loosened_heatmaps(sims: torch.Tensor, projected: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
    """ReLU(sum over heads of minmax(q.k) x (w . v)), (n, T), from the (kv_heads, n, group, T) layouts.

    The same numbers as :func:`_minmax` followed by the product and the sum, in fewer passes over the
    large tensors (this is most of a continuation's heatmap time): invisible keys take a visible key's
    similarity, so one ``aminmax`` gives each head's range without two masked copies, and they are set
    to 0 on the (n, T) result instead of on every head's weights.
    """
    invisible = ~visible  # (n, T)
    anchor = visible.to(torch.uint8).argmax(dim=-1)  # each row's first visible key
    kv_heads, rows, group, _ = sims.shape
    anchored = sims.gather(-1, anchor.to(sims.device)[None, :, None, None].expand(kv_heads, rows, group, 1))
    filled = torch.where(invisible.to(sims.device)[None, :, None, :], anchored, sims)
    low, high = torch.aminmax(filled, dim=-1, keepdim=True)
    span = high - low
    flat = span <= 0  # a head that sees a single key (or identical similarities) has nothing to rank: weight 1 each
    scale = torch.where(flat, 0.0, 1.0 / span.clamp_min(torch.finfo(span.dtype).tiny))
    weights = torch.addcmul(flat.to(span.dtype), filled.sub_(low), scale)
    heat = weights.mul_(projected).sum(dim=0).sum(dim=1)  # in turn: one strided reduction over two axes is slower
    return torch.relu(heat).masked_fill_(invisible.to(heat.device), 0.0)


def _rope_weights(layer: LayerCapture, rows: torch.Tensor, attention: str, expansion: str) -> torch.Tensor:
    """lambda from q.k after rotary embedding, per head, in the (kv_heads, n, group, T) layout."""
    sims = _per_head(layer.query_rows[:, rows].transpose(0, 1), layer.keys, layer.kv_group, expansion)
    visible = layer.visible[rows][None, :, None, :].expand_as(sims)
    if attention == "softmax":
        logits = sims * layer.scaling
        if layer.softcap is not None:
            logits = torch.tanh(logits / layer.softcap) * layer.softcap
        return torch.softmax(logits.masked_fill(~visible, float("-inf")), dim=-1)
    # A head that sees a single key (or identical similarities) has nothing to rank: weight 1 each.
    return _minmax(sims, visible, 1.0)


def expand_kv(vectors: torch.Tensor, group: int, head_dim: int, expansion: str) -> torch.Tensor:
    """Flattened key/value projections (..., kv_heads * D) expanded to the query width (..., heads * D)."""
    if expansion == "tiled":
        return vectors.repeat(*([1] * (vectors.dim() - 1)), group)
    shape = vectors.shape[:-1]
    per_head = vectors.reshape(*shape, -1, head_dim)
    return per_head.repeat_interleave(group, dim=-2).reshape(*shape, -1)


def raw_cosine_weights(query_rows: torch.Tensor, keys: torch.Tensor, visible: torch.Tensor, group: int, head_dim: int,
                       expansion: str) -> torch.Tensor:
    """lambda (n, T): cosine similarity of each raw query row (n, heads * D) with every raw key (T, kv_heads * D),
    keys expanded to the query width, min-max over the visible positions, 0 where constant or invisible."""
    expanded = expand_kv(keys.float(), group, head_dim, expansion)
    queries = query_rows.float()
    cosine = (queries @ expanded.T) / (queries.norm(dim=-1, keepdim=True) * expanded.norm(dim=-1)[None, :]).clamp_min(1e-12)
    return _minmax(cosine, visible, 0.0)


def token_weights_rows(layer: LayerCapture, rows: torch.Tensor, attention: str, expansion: str = "grouped") -> torch.Tensor:
    """lambda (n, heads, T) for captured rows ``rows`` (rope-qk): min-max or softmax of q.k over visible keys, 0 elsewhere."""
    return _to_heads(_rope_weights(layer, rows, attention, expansion), expansion)


def layer_heatmaps(
    layer: LayerCapture,
    rows: torch.Tensor,
    channel_weights: torch.Tensor,
    semantics: Semantics | str = "loosened",
    raw_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """H^(k) (n, T) for one layer and the captured rows ``rows``; ``channel_weights`` (n, heads, head_dim)
    is each row's gradient (before or after o_proj); ``raw_weights`` (n, T) the raw-cosine lambda, when used.
    A plain string ``semantics`` is the paper's choices with that ``attention`` mode."""
    if isinstance(semantics, str):
        semantics = Semantics(attention=semantics)
    projected = _per_head(channel_weights, layer.values, layer.kv_group, semantics.kv_expansion)
    if semantics.similarity == "rope-qk" and semantics.attention == "loosened":
        sims = _per_head(layer.query_rows[:, rows].transpose(0, 1), layer.keys, layer.kv_group, semantics.kv_expansion)
        return _loosened_heatmaps(sims, projected, layer.visible[rows])
    if semantics.similarity == "rope-qk":
        weighted = _rope_weights(layer, rows, semantics.attention, semantics.kv_expansion).mul_(projected)
    else:
        weighted = projected * raw_weights.to(projected.device)[None, :, None, :]
    return torch.relu(weighted.sum(dim=(0, 2)))


def token_weights(layer: LayerCapture, row: int, attention: str) -> torch.Tensor:
    """lambda (heads, T) for one captured row (rope-qk, grouped)."""
    return token_weights_rows(layer, torch.tensor([row]), attention)[0]


def layer_heatmap(layer: LayerCapture, row: int, channel_weights: torch.Tensor, semantics: Semantics | str = "loosened",
                  raw_weights: torch.Tensor | None = None) -> torch.Tensor:
    """H^(k) (T,) for one captured row; ``channel_weights`` (heads, head_dim), ``raw_weights`` (T,)."""
    raw = None if raw_weights is None else raw_weights[None]
    return layer_heatmaps(layer, torch.tensor([row]), channel_weights[None], semantics, raw)[0]
