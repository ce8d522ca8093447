"""Record what Grad-ELLM needs from every attention layer, through transformers' own extension points.

We register one attention function ("gradellm") in transformers' ``AttentionInterface`` together with a
mask function under the same name in ``AttentionMaskInterface``. Without the mask function a custom
attention gets *no* causal mask and silently becomes bidirectional (see the method notes). The
attention itself is transformers' SDPA path, so the hooked model computes what the plain model does,
and memory stays linear in sequence length: no attention matrix is ever stored.

While a :class:`Capture` is active, each layer records, for the query rows being explained:
the post-rotary query rows, all keys and values (detached views, no copies), which key positions each
row may see (the model's own mask row: causal, plus the sliding window on sliding layers), the
scaling, the grouped-query mapping, and the attention output *before* o_proj, kept in the autograd
graph so that d(target logit)/d(output) can be taken afterwards.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TypeVar

import torch

ATTENTION_NAME = "gradellm"  # SDPA underneath: linear memory, the default
EAGER_ATTENTION_NAME = "gradellm_eager"  # the model's own eager attention underneath, for exact tests
_REGISTERED = False
E = TypeVar("E", bound="Exclusive")
_IN_FORCE: dict[type, object] = {}  # the one entered instance of each kind of :class:`Exclusive`


class Exclusive:
    """A context the attention function reads while it is entered: one at a time per kind (class)."""

    def __enter__(self):
        kind = type(self)
        if _IN_FORCE.get(kind) is not None:
            raise RuntimeError(f"a gradellm {kind.__name__} is already active")
        _IN_FORCE[kind] = self
        return self

    def __exit__(self, *exc) -> None:
        _IN_FORCE[type(self)] = None


def in_force(kind: type[E]) -> E | None:
    """The entered instance of ``kind``, if any."""
    return _IN_FORCE.get(kind)  # type: ignore[return-value]


@dataclass
class LayerCapture:
    """One layer's tensors for the query rows ``rows`` (batch size 1)."""

    query_rows: torch.Tensor  # (heads, rows, head_dim), after rotary embedding
    keys: torch.Tensor  # (kv_heads, T, head_dim), after rotary embedding
    values: torch.Tensor  # (kv_heads, T, head_dim)
    visible: torch.Tensor  # (rows, T) bool: key positions each row may attend to
    output: torch.Tensor  # (1, T, heads, head_dim): attention output before o_proj, in the graph
    scaling: float
    softcap: float | None
    kv_group: int  # query heads per key/value head


@dataclass
class Capture(Exclusive):
    """Collects :class:`LayerCapture` objects for the query positions ``rows`` during one forward."""

    rows: torch.Tensor  # (R,) long: positions whose attention rows are recorded
    layers: dict[int, LayerCapture] = field(default_factory=dict)

    def record(self, module, query, key, value, attention_mask, output, scaling, softcap) -> None:
        """Keep one layer's tensors. A recompute under gradient checkpointing records nothing new."""
        layer = module.layer_idx
        if layer in self.layers:
            return
        rows = self.rows.to(query.device)
        self.layers[layer] = LayerCapture(
            query_rows=query.detach()[0, :, rows, :],  # detach first: no autograd node, so a recompute matches
            keys=key[0].detach(),
            values=value[0].detach(),
            visible=visible_rows(attention_mask, rows, key.shape[2], query.shape[2]),
            output=output,
            scaling=float(scaling),
            softcap=softcap,
            kv_group=query.shape[1] // key.shape[1],
        )


@dataclass
class ZeroedValues(Exclusive):
    """While active, layer ``layer``'s attention gives query row r no contribution from key column
    ``columns[r]`` (-1: none): that key's value counts as zero while every attention weight stays as
    it is, which is Value Zeroing's intervention (Mohebbi et al. 2023). Other layers are untouched."""

    layer: int
    columns: torch.Tensor  # (rows,) long


@dataclass
class RowsPass(Exclusive):
    """While active, attention takes the rows pass's form (:func:`~gradellm_cli.row_pass.rows_attention`):
    the query rows see ``cache_length`` cached key columns without gradient (and, with ``rows_see_rows``,
    the earlier rows beyond the cache, also without gradient), plus one own column each. Same outputs
    as SDPA on the rows pass's mask, with a cheaper backward pass."""

    cache_length: int
    rows_see_rows: bool = False


def takes_rows_attention(model) -> bool:
    """Whether ``model`` attends through :func:`gradellm_attention`, the one that serves a :class:`RowsPass`."""
    config = model.config
    return ATTENTION_NAME in {getattr(config, "_attn_implementation", None),
                              getattr(config.get_text_config(), "_attn_implementation", None)}


def visible_rows(attention_mask: torch.Tensor | None, rows: torch.Tensor, kv_length: int, q_length: int) -> torch.Tensor:
    """Which key positions each query row sees, read from the mask the model itself built.

    ``None`` means SDPA's plain causal mask (transformers skips building a mask when causal is all
    there is, which includes sliding layers whose window covers the whole input), with the query rows
    the last ``q_length`` of the ``kv_length`` positions (after a cache).
    """
    if attention_mask is None:
        keys = torch.arange(kv_length, device=rows.device)
        return keys[None, :] <= rows[:, None] + (kv_length - q_length)
    mask_rows = attention_mask[0, 0, rows, :kv_length]
    if mask_rows.dtype == torch.bool:
        return mask_rows.clone()
    return mask_rows > torch.finfo(mask_rows.dtype).min / 2


def gradellm_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """SDPA attention that also records into the active :class:`Capture`, if any."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    softcap = kwargs.pop("softcap", None)
    zeroing, rows = in_force(ZeroedValues), in_force(RowsPass)
    if zeroing is not None and getattr(module, "layer_idx", None) == zeroing.layer:
        return _zeroed_attention(module, query, key, value, attention_mask, scaling, softcap, zeroing.columns), None
    if in_force(Capture) is None:  # nothing recorded: keys no query row can see may be dropped
        key, value, attention_mask = skip_invisible_keys(key, value, attention_mask)
    if rows is not None and attention_mask is not None and key.shape[2] == rows.cache_length + query.shape[2]:
        from .row_pass import rows_attention

        output, weights = rows_attention(
            query, key, value, attention_mask, _scaling(scaling, query), softcap, rows.cache_length, rows.rows_see_rows
        ), None
    else:
        _refuse_rows_that_see_rows(rows)
        if softcap is not None:
            output, weights = _softcapped_attention(module, query, key, value, attention_mask, scaling, softcap)
        else:
            output, weights = sdpa_attention_forward(
                module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
            )
    _record(module, query, key, value, attention_mask, output, scaling, softcap)
    return output, weights


SKIP_KEYS_FROM = 2048  # below this many keys, looking for invisible ones costs more than it saves


def skip_invisible_keys(key: torch.Tensor, value: torch.Tensor, attention_mask: torch.Tensor | None):
    """Drop the leading key positions that no query row may see (exact: they get weight 0).

    A chunk of a long input on a sliding-window layer sees only the last window of a long cache; SDPA
    would still multiply every query with every cached key. Only a mask tells, so without one (plain
    causal) nothing is dropped.
    """
    if attention_mask is None or attention_mask.dim() != 4 or key.shape[2] < SKIP_KEYS_FROM:
        return key, value, attention_mask
    mask = attention_mask[..., : key.shape[2]]
    visible = mask if mask.dtype == torch.bool else mask > torch.finfo(mask.dtype).min / 2
    seen = visible.flatten(0, 2).any(dim=0)
    first = int(seen.to(torch.int8).argmax()) if bool(seen.any()) else 0
    if first == 0:
        return key, value, attention_mask
    return key[:, :, first:], value[:, :, first:], mask[..., first:]


def gradellm_eager_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """The model's own eager attention (found in its modeling module), also recording into the capture.

    Used by the tests to show that capturing changes nothing: its logits equal the plain eager model's.
    """
    _refuse_rows_that_see_rows(in_force(RowsPass))
    eager = sys.modules[type(module).__module__].eager_attention_forward
    output, weights = eager(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout, **kwargs)
    _record(module, query, key, value, attention_mask, output, scaling, kwargs.get("softcap"))
    return output, weights


def _refuse_rows_that_see_rows(rows: RowsPass | None) -> None:
    """Rows that see each other need the rows attention: any other passes gradients between them."""
    if rows is not None and rows.rows_see_rows:
        raise RuntimeError("a rows pass whose rows see each other must take the rows attention")


def _scaling(scaling: float | None, query: torch.Tensor) -> float:
    return scaling if scaling is not None else query.shape[-1] ** -0.5


def _record(module, query, key, value, attention_mask, output, scaling, softcap) -> None:
    capture = in_force(Capture)
    if capture is not None and query.shape[0] == 1:
        capture.record(module, query, key, value, attention_mask, output, _scaling(scaling, query), softcap)


def _attention_weights(query, key, attention_mask, scaling, softcap, dtype: torch.dtype | None = None):
    """Eager attention weights (batch, heads, rows, keys), softmax in float32, grouped-query keys repeated.

    The logits are computed in ``dtype`` (default: the query's, widened to float32). Without a mask the
    attention is plain causal, the query rows being the last ones (a cached decode step sees every key).
    """
    from transformers.integrations.sdpa_attention import repeat_kv

    key = repeat_kv(key, query.shape[1] // key.shape[1])
    dtype = dtype or torch.promote_types(query.dtype, torch.float32)
    logits = torch.matmul(query.to(dtype), key.to(dtype).transpose(2, 3)) * (scaling if scaling is not None else query.shape[-1] ** -0.5)
    if softcap is not None:
        logits = torch.tanh(logits / softcap) * softcap
    if attention_mask is None:
        attention_mask = torch.ones(query.shape[2], key.shape[2], dtype=torch.bool, device=query.device).tril(key.shape[2] - query.shape[2])
    mask = attention_mask[..., : key.shape[2]]
    if mask.dtype == torch.bool:
        logits = logits.masked_fill(~mask, torch.finfo(logits.dtype).min)
    else:
        logits = logits + mask.to(logits.dtype)
    return torch.softmax(logits, dim=-1, dtype=torch.float32)


def _zeroed_attention(module, query, key, value, attention_mask, scaling, softcap, columns: torch.Tensor) -> torch.Tensor:
    """Attention output (batch, rows, heads, head_dim) with row r's weight on column ``columns[r]`` set to 0."""
    from transformers.integrations.sdpa_attention import repeat_kv

    weights = _attention_weights(query, key, attention_mask, scaling, softcap)
    rows = torch.nonzero(columns >= 0).flatten().to(weights.device)
    weights[:, :, rows, columns.to(weights.device)[rows]] = 0.0
    value = repeat_kv(value, query.shape[1] // value.shape[1])
    return torch.matmul(weights.to(value.dtype), value).transpose(1, 2).contiguous()


def _softcapped_attention(module, query, key, value, attention_mask, scaling, softcap):
    """Eager attention with logit soft-capping (Gemma-2 style), which SDPA cannot express."""
    from transformers.integrations.sdpa_attention import repeat_kv

    weights = _attention_weights(query, key, attention_mask, scaling, softcap, dtype=query.dtype).to(query.dtype)
    value = repeat_kv(value, query.shape[1] // value.shape[1])
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), weights


def register() -> None:
    """Register the attention and its matching mask function with transformers (idempotent)."""
    global _REGISTERED
    if _REGISTERED:
        return
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask, sdpa_mask

    AttentionInterface.register(ATTENTION_NAME, gradellm_attention)
    AttentionMaskInterface.register(ATTENTION_NAME, sdpa_mask)
    AttentionInterface.register(EAGER_ATTENTION_NAME, gradellm_eager_attention)
    AttentionMaskInterface.register(EAGER_ATTENTION_NAME, eager_mask)
    _REGISTERED = True
