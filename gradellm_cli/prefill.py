"""Fill a key/value cache over a whole sequence without gradients, in chunks, as chunked prefill does.

Grad-ELLM needs, for each explained row t, the keys and values of every position row t may see and
the gradient of the target logit at row t's own attention outputs (method notes: only row t's
residual stream reaches the logit at t). So the positions themselves need no gradient at all: one
no-grad pass over the sequence fills a cache, and the target rows are then run against it
(:mod:`gradellm_cli.row_pass`). This module does the first part, and returns the model's own logits
at the positions asked for, so the explain pipeline gets its target probabilities from the same pass.

* The cache is a plain ``DynamicCache()`` (no config): every layer keeps every position, sliding
  layers included, so a row anywhere in the sequence can be served. (``DynamicCache(config)`` keeps
  only the last window on sliding layers.)
* Chunks of ``chunk`` tokens: no attention matrix larger than chunk x sequence is ever formed, so a
  32,000-token input runs in bounded memory. Chunks without a wanted position run the base model
  only (no LM head: on Gemma-3 its 262k-word head is two thirds of a forward pass); a chunk with
  one runs the whole model with ``logits_to_keep`` set to exactly those rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from .kv_cache import cache_argument, returned_cache
from .models import input_device

DEFAULT_CHUNK = 1024


@dataclass
class PrefixCache:
    """The key/value cache of ``length`` positions of one sequence (batch 1), filled without gradients."""

    cache: object  # transformers DynamicCache
    length: int

    @contextmanager
    def borrowed(self) -> Iterator[object]:
        """The cache, for one forward pass that appends rows to it; put back as it was afterwards.

        transformers' cache layers append by concatenation (a new tensor), so keeping the tensors of
        each layer and restoring them undoes the append exactly, and drops the rows' autograd graph.
        """
        saved = [(layer.keys, layer.values) for layer in self.cache.layers]
        try:
            yield self.cache
        finally:
            del self.cache.layers[len(saved):]  # layers a pass added lazily go again
            for layer, (keys, values) in zip(self.cache.layers, saved):
                layer.keys, layer.values = keys, values


def empty_cache():
    from transformers import DynamicCache

    return DynamicCache()


@torch.no_grad()
def fill_cache(
    model, input_ids: torch.Tensor, positions: torch.Tensor | None = None, chunk: int = DEFAULT_CHUNK, head: bool = True
) -> tuple[PrefixCache, torch.Tensor | None]:
    """Run ``input_ids`` (T,) through ``model`` into a fresh cache; the float32 logits at ``positions``
    (or, with ``head=False``, the final hidden states there).

    Returns the cache and a (len(positions), vocab) tensor on the CPU (None when no positions are
    asked for). The logits come from the model's own head, so they equal a plain forward pass's.
    With ``head=False`` no chunk runs the LM head, and the tensor holds the base model's final hidden
    states (len(positions), hidden) instead, in the model's dtype, on its device: for a caller that
    needs a few vocabulary rows of the head only (Grad-ELLM's check of its rows pass).
    """
    if chunk < 1:
        raise ValueError("chunk must be at least 1")
    ids = input_ids.to(input_device(model))
    if positions is None:
        wanted, inverse = torch.empty(0, dtype=torch.long), None
    else:
        wanted, inverse = torch.unique(positions.cpu().long(), sorted=True, return_inverse=True)
    cache = empty_cache()
    rows: list[torch.Tensor] = []
    total = ids.numel()
    for start in range(0, total, chunk):
        end = min(start + chunk, total)
        inside = wanted[(wanted >= start) & (wanted < end)] - start
        piece = ids[None, start:end]
        position_ids = torch.arange(start, end, device=ids.device)[None]
        if inside.numel() and head:
            keep = inside.to(ids.device)
            out = model(input_ids=piece, position_ids=position_ids, use_cache=True, logits_to_keep=keep, **cache_argument(model, cache))
            rows.append(out.logits[0].float().cpu())
        else:
            out = model.base_model(input_ids=piece, position_ids=position_ids, use_cache=True, **cache_argument(model.base_model, cache))
            if inside.numel():
                rows.append(out.last_hidden_state[0, inside.to(ids.device)])
        cache = returned_cache(out)
    found = torch.cat(rows)[inverse.to(rows[0].device)] if rows else None
    return PrefixCache(cache, total), found
