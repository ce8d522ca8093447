"""Grad-ELLM (Huang & Chan, arXiv 2601.03089, section 3.2), as fixed by the method notes.

For target logit l at position t and each selected layer k:
  w      = d l / d o_t            channel weights: gradient at the attention output before o_proj
  lam_i  = minmax_i(q_t . k_i)    token weights per head over the positions the head sees from t
  H_i^k  = ReLU( sum_h sum_d w[h,d] * lam_i^h * v_i^h[d] )
and H_i = sum_k H_i^k. The choices the paper's text leaves to its code (where the gradient is taken,
how grouped keys and values are expanded, which similarity weighs the tokens) are options, with the
paper's text as the default and the authors' code as ``--variant port`` (:mod:`.grad_ellm_math`).

Two ways to get w, with the same numbers (tests compare them to 1e-5):

* rows (default): a no-grad cache (:mod:`..prefill`: usually the one the explain pipeline filled
  anyway, over the whole sequence; filled here, it may stop at the first target), then one forward and
  one backward pass of the target rows alone against it (:mod:`..row_pass`): all steps of a
  continuation cost about one forward pass.
* full (the reference, the fallback for models the rows pass cannot serve, and the path of the
  ``post-o`` and ``raw-cosine`` choices): one forward pass over the whole sequence with gradients, then
  one backward pass per step.
"""

from __future__ import annotations

import warnings
import weakref
from contextlib import nullcontext
from functools import partial

import torch

from ..capture import Capture, LayerCapture, RowsPass, takes_rows_attention
from ..checkpointing import checkpointed_layers, wants_checkpointing
from ..errors import BadInput
from ..kv_cache import cache_argument
from ..layers import LAYERS_FOR_SYNTAX, select_layers
from ..models import input_device
from ..prefill import PrefixCache, fill_cache
from ..row_pass import fold_columns, head_logits, row_masks
from . import register
from .base import Method, MethodOptions, Targets, input_embeddings
from .grad_ellm_math import (  # noqa: F401 - token_weights and layer_heatmap are re-exported for callers of this module
    GRAD_AT,
    KV_EXPANSIONS,
    SIMILARITIES,
    Semantics,
    layer_heatmap,
    layer_heatmaps,
    raw_cosine_weights,
    token_weights,
)

ATTENTION_MODES = ("loosened", "softmax")
# --variant: presets of the four choices. paper: the paper's text (method notes); port: the authors'
# code as a public port of it computes Grad-ELLM (last layer, raw cosine, gradient after o_proj, tiled).
VARIANTS = {
    "paper": {"similarity": "rope-qk", "grad_at": "pre-o", "kv_expansion": "grouped", "layers": "all"},
    "port": {"similarity": "raw-cosine", "grad_at": "post-o", "kv_expansion": "tiled", "layers": "last:1"},
}


def variant_options(variant: str = "paper", **chosen: str | None) -> dict[str, str]:
    """The four choices of a ``--variant`` preset, each replaced by the one given where it is not None."""
    if variant not in VARIANTS:
        raise BadInput(f"unknown `variant` {variant!r}: use {' or '.join(VARIANTS)}")
    return {name: chosen.get(name) or value for name, value in VARIANTS[variant].items()}


def semantics_of(options: MethodOptions) -> Semantics:
    """The options' choices, checked (one-line errors naming the option)."""
    for flag, value, allowed in (
        ("`attention`", options.attention, ATTENTION_MODES),
        ("`similarity`", options.similarity, SIMILARITIES),
        ("`grad_at`", options.grad_at, GRAD_AT),
        ("`kv_expansion`", options.kv_expansion, KV_EXPANSIONS),
    ):
        if value not in allowed:
            raise BadInput(f"unknown {flag} {value!r}: use {' or '.join(allowed)}")
    if options.similarity == "raw-cosine" and options.attention == "softmax":
        raise BadInput("`attention` softmax weighs q.k after rotary embedding: it goes with `similarity` rope-qk")
    return Semantics(options.attention, options.similarity, options.grad_at, options.kv_expansion)


def check_model(model, semantics: Semantics) -> None:
    """Refuse a choice the model cannot take: post-o reads the hidden vector as heads x head_dim."""
    config = model.config.get_text_config()
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    if semantics.grad_at == "post-o" and heads * head_dim != config.hidden_size:
        raise BadInput(
            f"`grad_at` post-o needs the attention's query width ({heads} x {head_dim} = {heads * head_dim}) to equal the "
            f"hidden size ({config.hidden_size}); this model's do not: use `grad_at` pre-o"
        )


@register
class GradELLM(Method):
    name = "grad-ellm"
    description = "Grad-ELLM: d logit/d attention-output channel weights x loosened q.k token weights x values, ReLU, summed over layers"

    def config(self, options: MethodOptions) -> dict:
        # the gradient path and checkpointing change memory and time, never the numbers (tests compare
        # them), so they are not part of the config
        return {
            "layers": options.layers,
            "attention": options.attention,
            "similarity": options.similarity,
            "grad_at": options.grad_at,
            "kv_expansion": options.kv_expansion,
        }

    def check(self, options: MethodOptions) -> None:
        semantics_of(options)
        select_layers(options.layers, LAYERS_FOR_SYNTAX)  # the spec's form; the model's depth is checked once it loads

    def attribute(self, model, targets: Targets, options: MethodOptions) -> torch.Tensor:
        semantics = semantics_of(options)
        if options.grad_path not in GRAD_PATHS:
            raise BadInput(f"unknown Grad-ELLM gradient path {options.grad_path!r}: use rows or full")
        check_model(model, semantics)
        layers = select_layers(options.layers, model.config.get_text_config().num_hidden_layers)
        rows_can = semantics.similarity == "rope-qk" and semantics.grad_at == "pre-o"  # the others need the whole sequence's projections
        if options.grad_path == "rows" and rows_can:
            scores = attribute_rows(model, targets, layers, semantics)
            if scores is not None:
                return scores
        return attribute_full(model, targets, layers, semantics, options.checkpoint)


GRAD_PATHS = ("rows", "full")
ROWS_PER_PASS = 256  # target rows run together in one rows pass (memory grows with it, linearly)
HEATMAP_ELEMENTS = 1 << 23  # rows x heads x keys of one batched heatmap computation (32 MB per float32 temporary)
ROWS_ATTENTION_BYTES = 1 << 28  # attention weights (and soft-capped logits) a rows pass may keep for its backward pass
_FELL_BACK: set[str] = set()


def target_scalars(logits: torch.Tensor, targets: Targets, rows: slice | torch.Tensor) -> torch.Tensor:
    """The explained scalar of each step from its logits over the vocabulary (S, V): target minus contrast."""
    index = torch.arange(logits.shape[0], device=logits.device)
    scalar = logits[index, targets.target_ids[rows].to(logits.device)]
    if targets.contrast_ids is not None:
        scalar = scalar - logits[index, targets.contrast_ids[rows].to(logits.device)]
    return scalar


# -- the reference path: one forward+backward over the whole sequence ------------------------------------


def attribute_full(model, targets: Targets, layers: list[int], semantics: Semantics | str, checkpoint: str = "auto") -> torch.Tensor:
    """Grad-ELLM from one forward pass of the whole sequence with gradients and one backward pass per step.

    The reference that the rows path is tested against, the fallback for models it cannot serve, and
    the path of the post-o and raw-cosine choices (which need projections of the whole sequence).
    """
    if isinstance(semantics, str):
        semantics = Semantics(attention=semantics)
    long_input = wants_checkpointing(checkpoint, targets.input_ids.numel())
    with checkpointed_layers(model, enabled=long_input), Projections(model, layers, semantics) as projections:
        capture, scalars = forward_with_capture(model, targets)
        where = projections.post_o if semantics.grad_at == "post-o" else {k: capture.layers[k].output for k in layers}
        rows = {}
        for k in layers:  # keep only the target rows of each gradient, never the full (T, H, D) tensor
            where[k].register_hook(partial(_keep_rows, rows, k, targets.positions))
        earliest = where[layers[0]]
        scores = torch.zeros(targets.steps, targets.input_ids.numel())
        for step in range(targets.steps):
            torch.autograd.grad(scalars[step], [earliest], retain_graph=step < targets.steps - 1)
            heatmap = 0.0
            for k in layers:  # .to(): with --device map:auto the layers may sit on several devices
                layer = capture.layers[k]
                weights = rows[k][step].reshape(layer.query_rows.shape[0], -1)  # (heads, head_dim), before or after o_proj
                raw = projections.raw_weights(k, layer, step, int(targets.positions[step])) if projections.queries else None
                heatmap = heatmap + layer_heatmap(layer, step, weights, semantics, raw).to(earliest.device)
            scores[step] = heatmap.detach().cpu()
    return scores


class Projections:
    """Forward hooks on the selected layers' attention for the choices that need more than the capture:
    the raw q_proj and k_proj outputs (raw-cosine) and the attention module's output after o_proj
    (post-o, kept in the autograd graph). Only the first forward is kept (a checkpointed layer runs twice)."""

    def __init__(self, model, layers: list[int], semantics: Semantics):
        self.semantics = semantics
        decoder = getattr(model.base_model, "layers", None)
        if decoder is None and (semantics.grad_at == "post-o" or semantics.similarity == "raw-cosine"):
            raise BadInput("this Grad-ELLM choice needs decoder layers at model.base_model.layers; this model has none")
        self.attention = {k: decoder[k].self_attn for k in layers} if decoder is not None else {}
        self.post_o: dict[int, torch.Tensor] = {}
        self.queries: dict[int, torch.Tensor] = {}
        self.keys: dict[int, torch.Tensor] = {}
        self.handles: list = []

    def __enter__(self) -> Projections:
        for k, attention in self.attention.items():
            if self.semantics.grad_at == "post-o":
                self.handles.append(attention.register_forward_hook(partial(self._keep, self.post_o, k, output_index=0)))
            if self.semantics.similarity == "raw-cosine":
                self.handles.append(attention.q_proj.register_forward_hook(partial(self._keep, self.queries, k, detach=True)))
                self.handles.append(attention.k_proj.register_forward_hook(partial(self._keep, self.keys, k, detach=True)))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self.handles:
            handle.remove()

    @staticmethod
    def _keep(store: dict, layer: int, module, inputs, output, output_index: int | None = None, detach: bool = False) -> None:
        if layer not in store:
            value = output[output_index] if output_index is not None else output
            store[layer] = value.detach() if detach else value

    def raw_weights(self, layer: int, capture: LayerCapture, step: int, position: int) -> torch.Tensor:
        """The raw-cosine lambda (T,) of one step (captured row ``step``, at ``position``)."""
        head_dim = capture.query_rows.shape[-1]
        keys = self.keys[layer][0]  # (T, kv_heads * head_dim)
        group = capture.query_rows.shape[0] // (keys.shape[-1] // head_dim)
        query = self.queries[layer][0, position][None]
        return raw_cosine_weights(query, keys, capture.visible[step][None], group, head_dim, self.semantics.kv_expansion)[0]


def _keep_rows(store: dict, layer: int, positions: torch.Tensor, grad: torch.Tensor) -> None:
    store[layer] = grad[0, positions.to(grad.device)].detach()


def forward_with_capture(model, targets: Targets) -> tuple[Capture, torch.Tensor]:
    """One forward over the whole sequence, capturing every layer; return the capture and the explained scalars.

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
    return capture, target_scalars(logits[rows], targets, slice(None))


# -- the rows path: a cache of the sequence, then the target rows alone ----------------------------------


def attribute_rows(model, targets: Targets, layers: list[int], semantics: Semantics | str) -> torch.Tensor | None:
    """Grad-ELLM from a no-grad cache of the sequence and one forward+backward pass of the target rows.

    Exact for the reason in the method notes: the gradient of the logit at t reaches layer k's
    attention output only at row t, through row t's own residual stream. The cache is the explain
    pipeline's (``targets.prefix``) or filled here (:func:`_own_cache`). None when this model's masks
    cannot be built, or when the rows' logits disagree with the model's own (a mask or head this
    module does not know): the caller then takes the full path. The pipeline's forward pass gives
    every target's own logit to check; a cache filled here gives one row per rows pass.
    """
    passes = [torch.arange(start, min(start + ROWS_PER_PASS, targets.steps)) for start in range(0, targets.steps, ROWS_PER_PASS)]
    prefix, reference = targets.prefix, targets.target_logits
    if prefix is None or reference is None:
        if not head_matches(model, targets.input_ids):
            return _fall_back(model, "the rows' logits differ from the model's own forward pass (its LM head)")
        prefix, reference = _own_cache(model, targets, passes)
    scores = torch.zeros(targets.steps, targets.input_ids.numel())
    for rows in passes:
        batch = _rows_batch(model, targets, prefix, rows, reference[rows], layers, semantics)
        if batch is None:
            return None
        scores[rows] = batch
    return scores


def _own_cache(model, targets: Targets, passes: list[torch.Tensor]) -> tuple[PrefixCache, torch.Tensor]:
    """A cache filled here, without the LM head, and the target logit of the rows it can check (NaN elsewhere).

    Where the steps are one rows pass of consecutive positions and the rows attention serves it, the
    cache stops at the first row: the rows pass computes the later rows' keys and values itself
    (:mod:`..row_pass`), and the fill's last row, the first target, is the one checked. Otherwise
    it holds the whole sequence and the last row of each rows pass is checked, the row a wrong mask
    is likeliest to move. (The first target sees no other row, so in the first case the check covers
    the masks of the cached columns, the model's part, and not the rows block, which is this
    project's own and tested in ``tests/test_row_attention.py``.) The check's logits come from
    :func:`head_logits` on the fill's hidden states (:func:`head_matches` has shown it gives the
    model's own logits), not from the LM head: on Gemma-3 its 262k rows cost a fifth of a 66-token
    forward pass.
    """
    positions = targets.positions
    dtype = model.get_input_embeddings().weight.dtype
    consecutive = bool((positions.diff() == 1).all())
    if len(passes) == 1 and consecutive and _rows_attention_fits(model, int(positions[0]) + 1, targets.steps, dtype, True):
        checked, length = torch.tensor([0]), int(positions[0]) + 1
    else:
        checked, length = torch.stack([rows[-1] for rows in passes]), targets.input_ids.numel()
    prefix, hidden = fill_cache(model, targets.input_ids[:length], positions[checked], head=False)
    reference = torch.full((targets.steps,), float("nan"))
    reference[checked] = head_logits(model, hidden, targets.target_ids[checked][:, None])[:, 0].detach().cpu()
    return prefix, reference


HEAD_CHECK_TOKENS = 8
_HEADS_CHECKED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@torch.no_grad()
def head_matches(model, input_ids: torch.Tensor) -> bool:
    """Whether :func:`head_logits` gives the model's own logits, checked once per model on the first
    few tokens of an input: the top words of the model's last logits row, from both."""
    verdict = _HEADS_CHECKED.get(model)
    if verdict is None:
        ids = input_ids[:HEAD_CHECK_TOKENS][None].to(input_device(model))
        try:
            own = model(input_ids=ids, use_cache=False, logits_to_keep=1).logits[0, -1].float()
            hidden = model.base_model(input_ids=ids, use_cache=False).last_hidden_state[0, -1:]
            vocab = own.topk(min(8, own.numel())).indices
            got = head_logits(model, hidden, vocab[None])[0].cpu()
        except (TypeError, ValueError, RuntimeError, IndexError, AttributeError):  # a model that takes no such call
            verdict = False
        else:
            verdict = _agrees(got, own[vocab].cpu(), model.get_input_embeddings().weight.dtype)
        _HEADS_CHECKED[model] = verdict
    return verdict


def _rows_batch(model, targets: Targets, prefix: PrefixCache, rows: torch.Tensor, reference: torch.Tensor, layers, semantics):
    """Scores (len(rows), T) of the steps ``rows`` from one rows pass; None to fall back (see above)."""
    device = input_device(model)
    positions = targets.positions[rows]
    dtype = model.get_input_embeddings().weight.dtype
    masks = row_masks(model.config, positions, prefix.length, dtype, device)
    if masks is None:
        return _fall_back(model, "its attention layers are of a kind the rows pass does not know")
    rows_see_rows = bool(positions[-1] >= prefix.length)  # rows beyond the cache: see :func:`_own_cache`
    embeds = input_embeddings(model, targets.input_ids[positions]).detach().requires_grad_(True)
    vocab = targets.target_ids[rows][:, None]
    if targets.contrast_ids is not None:
        vocab = torch.cat([vocab, targets.contrast_ids[rows][:, None]], dim=1)
    with torch.enable_grad(), prefix.borrowed() as cache, Capture(rows=torch.arange(rows.numel())) as capture, \
            _rows_attention_context(model, prefix.length, rows.numel(), dtype, rows_see_rows):
        try:
            hidden = model.base_model(
                inputs_embeds=embeds,
                position_ids=positions[None].to(device),
                attention_mask=masks,
                use_cache=True,
                **cache_argument(model.base_model, cache),
            ).last_hidden_state[0]
            logits = head_logits(model, hidden, vocab)
        except (TypeError, ValueError, RuntimeError, IndexError, AttributeError) as exc:  # a model that takes no such mask or cache
            return _fall_back(model, f"its forward pass rejects the rows pass ({type(exc).__name__}: {str(exc)[:80]})")
        if not _agrees(logits[:, 0].detach().cpu(), reference, dtype):
            return _fall_back(model, "the rows' logits differ from the model's own forward pass")
        scalar = logits[:, 0] - logits[:, 1] if targets.contrast_ids is not None else logits[:, 0]
        grads = torch.autograd.grad(scalar.sum(), [capture.layers[k].output for k in layers])
    n, kv_length = rows.numel(), prefix.length + rows.numel()
    heads = capture.layers[layers[0]].query_rows.shape[0]
    block = max(1, HEATMAP_ELEMENTS // (heads * kv_length))  # rows per heatmap computation: bounded memory
    out = torch.zeros(n, kv_length)
    for start in range(0, n, block):
        part = torch.arange(start, min(start + block, n))
        heat = sum(layer_heatmaps(capture.layers[k], part, grad[0, part.to(grad.device)], semantics).to(device)
                   for k, grad in zip(layers, grads))
        out[part] = heat.detach().cpu()
    return fold_columns(out, positions, prefix.length, targets.input_ids.numel())


def _rows_attention_fits(model, cache_length: int, rows: int, dtype: torch.dtype, rows_see_rows: bool = False) -> bool:
    """Whether the rows pass's own attention serves it: a model with gradellm's attention (not the eager
    one the tests load, which ignores a rows pass), in float32 or float64 (half-precision ones
    keep SDPA, which accumulates the scores in float32 where the rows attention would round them to
    the model's precision first), and what it keeps for the backward pass within
    :data:`ROWS_ATTENTION_BYTES`: the attention weights of every layer, and the capped logits too where
    the model soft-caps them."""
    if dtype not in (torch.float32, torch.float64) or not takes_rows_attention(model):
        return False
    config = model.config.get_text_config()
    copies = 2 if getattr(config, "attn_logit_softcapping", None) else 1
    columns = cache_length + (rows if rows_see_rows else 0) + 1
    kept = config.num_hidden_layers * config.num_attention_heads * rows * columns * copies * dtype.itemsize
    return kept <= ROWS_ATTENTION_BYTES


def _rows_attention_context(model, cache_length: int, rows: int, dtype: torch.dtype, rows_see_rows: bool = False):
    """The rows pass's own attention (cheaper backward pass, the same numbers) where it fits
    (:func:`_rows_attention_fits`), otherwise the model's usual attention (SDPA, or the eager
    soft-capped one). Rows that see rows must have it: SDPA would let gradients pass between them."""
    if _rows_attention_fits(model, cache_length, rows, dtype, rows_see_rows):
        return RowsPass(cache_length, rows_see_rows)
    if rows_see_rows:
        raise RuntimeError("rows that see each other need the rows attention")  # _own_cache never asks for this
    return nullcontext()


def _agrees(got: torch.Tensor, reference: torch.Tensor, dtype: torch.dtype) -> bool:
    """Whether the rows pass reproduces the model's own target logits where known (not NaN; a wrong mask
    would not: it moves them by whole units), and gives finite logits everywhere. Half-precision
    rounding over many layers moves them by a few tenths."""
    absolute, relative = (1e-3, 1e-3) if dtype in (torch.float32, torch.float64) else (0.5, 5e-2)
    reference = reference.float()
    known = ~reference.isnan()
    close = (got - reference).abs() <= absolute + relative * reference.abs()
    return bool(close[known].all() and torch.isfinite(got).all())


def _fall_back(model, reason: str) -> None:
    """Note once per model type that the full path is used instead (same numbers, more time and memory)."""
    kind = type(model).__name__
    if kind not in _FELL_BACK:
        _FELL_BACK.add(kind)
        warnings.warn(f"Grad-ELLM on {kind}: {reason}; using the full forward+backward path", stacklevel=3)
    return None
