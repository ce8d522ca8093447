"""The perturbation engines: the model's next-token logits at the target position for a batch of masks.

Every perturbation of a record changes only the embeddings of source tokens (zeroed where the mask
says so); template tokens and the generated prefix keep their embeddings. Two engines compute the
same thing:

* :class:`BatchedEngine` (the fast path). The input embeddings are computed once; the key/value
  cache of the prefix before the first source token, which every perturbation shares, is computed
  once per record, and each batch runs only the rest (first source token onwards) on a copy of that
  cache expanded to the batch size (``copy.deepcopy`` + ``batch_repeat_interleave``). Only the last
  position's logits are computed (``logits_to_keep=1``). Sliding-window layers (Gemma-3) are exact
  too: transformers' ``DynamicSlidingWindowLayer`` keeps the last ``window - 1`` prefix positions,
  exactly those the first suffix query can see, and builds the window mask from the cache's
  length (the tests check a prefix longer than the window). A model whose cache holds any other
  layer type gets no prefix cache (``prefix_cached`` is False; the record's ``engine`` says so).
* :class:`OneByOneEngine` (the reference): one perturbation per forward pass of the whole input,
  no cache. Tests and the benchmark compare the fast path against it.

:func:`measure` drives either engine over a stream of masks and keeps only what the metrics need:
the Hellinger distance to the unperturbed distribution and, for classification, which label word
wins. With ``dedupe`` (the fast path) identical masks are run once, and a mask that keeps every
token reuses the unperturbed result (so its distance is exactly 0).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import BadInput
from ..kv_cache import cache_argument, returned_cache
from ..methods.base import input_embeddings
from .distance import hellinger, probabilities
from .normalise import source_positions

MAX_BATCH_TOKENS = 16384  # caps batch x sequence length so long inputs do not exhaust memory


def _copyable(cache) -> bool:
    """Whether ``cache`` is a DynamicCache whose layers we know how to copy and expand exactly."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer, DynamicSlidingWindowLayer

    if type(cache) is not DynamicCache:
        return False
    return all(type(layer) in (DynamicLayer, DynamicSlidingWindowLayer) for layer in cache.layers)


def _embed(model, input_ids: Sequence[int]) -> torch.Tensor:
    """(T, d) input embeddings of ``input_ids``; BadInput when the ids do not fit the model's vocabulary."""
    ids = torch.as_tensor(list(input_ids), dtype=torch.long)
    vocabulary = model.get_input_embeddings().num_embeddings
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= vocabulary):
        raise BadInput(f"input_ids do not fit the model's vocabulary of {vocabulary}: were the heatmaps made with another model?")
    with torch.inference_mode():
        return input_embeddings(model, ids)[0]


def _keep_tensor(masks: Sequence[torch.Tensor], m: int, d: int, device) -> torch.Tensor:
    """(B, m, 1) or (B, m, d) bool on ``device`` from token masks (m,) and/or element masks (m, d)."""
    if all(mask.dim() == 1 for mask in masks):
        return torch.stack(list(masks))[:, :, None].to(device)
    rows = [mask[:, None].expand(m, d) if mask.dim() == 1 else mask for mask in masks]
    return torch.stack(rows).to(device)


class BatchedEngine:
    """Batched forward passes over the part after the shared prefix, on its cached keys and values."""

    def __init__(self, model, input_ids: Sequence[int], source_mask: Sequence[bool], prefix_cache: bool = True):
        self.model = model
        positions = source_positions(source_mask)
        embeddings = _embed(model, input_ids)  # (T, d)
        with torch.inference_mode():
            self.cache = None
            start = int(positions[0])
            if prefix_cache and start > 0:
                cache = returned_cache(model(inputs_embeds=embeddings[None, :start], use_cache=True))
                self.cache = cache if _copyable(cache) else None
            if self.cache is None:
                start = 0
        self.start = start
        self.tail = embeddings[start:]  # (L, d): what each batch row runs
        self.source = torch.from_numpy(positions - start).to(self.tail.device)
        self.length = embeddings.shape[0]
        self.source_count = positions.size
        self.hidden = embeddings.shape[-1]

    @property
    def prefix_cached(self) -> bool:
        return self.cache is not None

    @property
    def name(self) -> str:
        return "batched+prefix-cache" if self.prefix_cached else "batched"

    def batch_limit(self, batch_size: int) -> int:
        return max(1, min(batch_size, MAX_BATCH_TOKENS // max(1, self.tail.shape[0])))

    @torch.inference_mode()
    def logits(self, masks: Sequence[torch.Tensor]) -> torch.Tensor:
        """(B, vocab) float32 logits of the next token after the last input position, one row per mask."""
        batch = len(masks)
        keep = _keep_tensor(masks, self.source_count, self.hidden, self.tail.device)
        inputs = self.tail[None].repeat(batch, 1, 1)
        inputs[:, self.source] = torch.where(keep, inputs[:, self.source], torch.zeros((), dtype=inputs.dtype, device=inputs.device))
        if self.cache is not None:
            cache = copy.deepcopy(self.cache)
            cache.batch_repeat_interleave(batch)
            out = self.model(inputs_embeds=inputs, **cache_argument(self.model, cache), use_cache=True, logits_to_keep=1)
        else:
            out = self.model(inputs_embeds=inputs, use_cache=False, logits_to_keep=1)
        return out.logits[:, -1].float().cpu()


class OneByOneEngine:
    """The reference: one full forward pass per perturbation, batch size 1, no cache."""

    name = "one-by-one"
    prefix_cached = False

    def __init__(self, model, input_ids: Sequence[int], source_mask: Sequence[bool]):
        self.model = model
        positions = source_positions(source_mask)
        self.embeddings = _embed(model, input_ids)
        self.source = torch.from_numpy(positions).to(self.embeddings.device)
        self.length = self.embeddings.shape[0]
        self.source_count = positions.size
        self.hidden = self.embeddings.shape[-1]

    def batch_limit(self, batch_size: int) -> int:
        return 1

    @torch.inference_mode()
    def logits(self, masks: Sequence[torch.Tensor]) -> torch.Tensor:
        rows = []
        for mask in masks:
            keep = _keep_tensor([mask], self.source_count, self.hidden, self.embeddings.device)[0]
            inputs = self.embeddings.clone()
            inputs[self.source] = torch.where(keep, inputs[self.source], torch.zeros((), dtype=inputs.dtype, device=inputs.device))
            out = self.model(inputs_embeds=inputs[None], use_cache=False, logits_to_keep=1)
            rows.append(out.logits[0, -1].float().cpu())
        return torch.stack(rows)


@dataclass
class Measured:
    """Per mask, in the order given: distance to the unperturbed distribution and the winning label."""

    hellinger: np.ndarray  # (N,) float64
    label_choice: np.ndarray | None  # (N,) index into label_ids, classification only
    reference_choice: int | None  # the unperturbed input's winning label index
    rows: int  # perturbed inputs the model actually ran (after dedupe; the unperturbed one not counted)


def _canonical(mask: torch.Tensor) -> tuple[torch.Tensor, bytes | None]:
    """An element mask that is uniform within every token becomes a token mask; the dedupe key (None: don't)."""
    if mask.dim() == 2:
        every, some = mask.all(dim=1), mask.any(dim=1)
        if not torch.equal(every, some):
            return mask, None
        mask = every
    return mask, mask.numpy().tobytes()


def measure(
    engine,
    masks: Iterable[torch.Tensor],
    label_ids: Sequence[int] | None = None,
    batch_size: int = 32,
    dedupe: bool = True,
) -> Measured:
    """Run every mask through ``engine`` in batches; see :class:`Measured`."""
    labels = torch.as_tensor(list(label_ids), dtype=torch.long) if label_ids else None
    reference_logits = engine.logits([torch.ones(engine.source_count, dtype=torch.bool)])
    if labels is not None and (int(labels.min()) < 0 or int(labels.max()) >= reference_logits.shape[-1]):
        raise BadInput("label_ids do not fit the model's vocabulary: were the heatmaps made with another model?")
    reference = probabilities(reference_logits)[0]
    reference_choice = int(reference_logits[0, labels].argmax()) if labels is not None else None
    limit = engine.batch_limit(batch_size)

    distances: list[float] = []  # per unique evaluation
    choices: list[int] = []
    slots: list[int] = []  # per mask: index into the unique evaluations, -1 for the unperturbed input
    seen: dict[bytes, int] = {}
    if dedupe:
        seen[np.ones(engine.source_count, dtype=bool).tobytes()] = -1
    pending: list[torch.Tensor] = []

    def flush() -> None:
        if not pending:
            return
        logits = engine.logits(pending)
        distances.extend(hellinger(probabilities(logits), reference[None]).tolist())
        if labels is not None:
            choices.extend(logits[:, labels].argmax(dim=1).tolist())
        pending.clear()

    unique = 0
    for mask in masks:
        key = None
        if dedupe:
            mask, key = _canonical(mask)
            if key is not None and key in seen:
                slots.append(seen[key])
                continue
        if key is not None:
            seen[key] = unique
        slots.append(unique)
        unique += 1
        pending.append(mask)
        if len(pending) >= limit:
            flush()
    flush()

    index = np.asarray(slots, dtype=np.int64)
    values = np.append(np.asarray(distances, dtype=np.float64), 0.0)  # slot -1 -> the appended 0
    hellinger_values = values[index]
    label_choice = None
    if labels is not None:
        label_choice = np.append(np.asarray(choices, dtype=np.int64), reference_choice)[index]
    return Measured(hellinger_values, label_choice, reference_choice, unique)
