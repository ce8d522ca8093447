"""Grad-ELLM (Huang & Chan, arXiv 2601.03089, section 3.2), as fixed by the method notes.

For target logit l at position t and each selected layer k:
  w      = d l / d o_t            channel weights: gradient at the attention output before o_proj
  lam_i  = minmax_i(q_t . k_i)    token weights per head over the positions the head sees from t
  H_i^k  = ReLU( sum_h sum_d w[h,d] * lam_i^h * v_i^h[d] )
and H_i = sum_k H_i^k.

Two ways to get w, with the same numbers (tests compare them to 1e-5):

* rows (default): a no-grad cache of the whole sequence (:mod:`..prefill`, usually the one the explain
  pipeline filled anyway), then one forward and one backward pass of the target rows alone against
  it (:mod:`..row_pass`): all steps of a continuation cost about one forward pass.
* full (the reference, and the fallback for models the rows pass cannot serve): one forward pass over
  the whole sequence with gradients, then one backward pass per step.
"""

from __future__ import annotations

import warnings
from functools import partial

import torch

from ..capture import Capture, LayerCapture
from ..checkpointing import checkpointed_layers, wants_checkpointing
from ..errors import BadInput
from ..kv_cache import cache_argument
from ..models import input_device
from ..prefill import PrefixCache, fill_cache
from ..row_pass import fold_columns, head_logits, row_masks
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
    """(n, heads, D) . (kv_heads, T, D) -> (kv_heads, n, group, T): query head h = k * group + g paired
    with kv head k = h // group, the grouped-query mapping of transformers' ``repeat_kv``, without
    copying keys or values. The (kv_heads, n, group) order is the one the batched product writes."""
    rows, heads, dim = vectors.shape
    grouped = vectors.float().reshape(rows, heads // group, group, dim).permute(1, 0, 2, 3).reshape(heads // group, rows * group, dim)
    products = torch.bmm(grouped, kv_vectors.float().transpose(1, 2))
    return products.view(heads // group, rows, group, -1)


def _grouped_weights(layer: LayerCapture, rows: torch.Tensor, attention: str) -> torch.Tensor:
    """lambda in the (kv_heads, n, group, T) layout of :func:`_per_head`."""
    sims = _per_head(layer.query_rows[:, rows].transpose(0, 1), layer.keys, layer.kv_group)
    visible = layer.visible[rows][None, :, None, :]
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
    return normalised.masked_fill_(~visible, 0.0)


def token_weights_rows(layer: LayerCapture, rows: torch.Tensor, attention: str) -> torch.Tensor:
    """lambda (n, heads, T) for captured rows ``rows``: min-max or softmax of q.k over visible keys, 0 elsewhere."""
    weights = _grouped_weights(layer, rows, attention)
    kv_heads, n, group, length = weights.shape
    return weights.permute(1, 0, 2, 3).reshape(n, kv_heads * group, length)


def layer_heatmaps(layer: LayerCapture, rows: torch.Tensor, channel_weights: torch.Tensor, attention: str) -> torch.Tensor:
    """H^(k) (n, T) = ReLU(sum_h lambda_i^h * (w_h . v_i^h)) for one layer and the captured rows ``rows``,
    ``channel_weights`` (n, heads, head_dim) being each row's gradient at the attention output."""
    projected = _per_head(channel_weights, layer.values, layer.kv_group)
    weighted = _grouped_weights(layer, rows, attention).mul_(projected)
    return torch.relu(weighted.sum(dim=(0, 2)))


def token_weights(layer: LayerCapture, row: int, attention: str) -> torch.Tensor:
    """lambda (heads, T) for one captured row."""
    return token_weights_rows(layer, torch.tensor([row]), attention)[0]


def layer_heatmap(layer: LayerCapture, row: int, channel_weights: torch.Tensor, attention: str) -> torch.Tensor:
    """H^(k) (T,) for one captured row; ``channel_weights`` (heads, head_dim)."""
    return layer_heatmaps(layer, torch.tensor([row]), channel_weights[None], attention)[0]


@register
class GradELLM(Method):
    name = "grad-ellm"
    description = "Grad-ELLM: d logit/d attention-output channel weights x loosened q.k token weights x values, ReLU, summed over layers"

    def config(self, options: MethodOptions) -> dict:
        # the gradient path and checkpointing change memory and time, never the numbers (tests compare
        # them), so they are not part of the config
        return {"layers": options.layers, "attention": options.attention}

    def attribute(self, model, targets: Targets, options: MethodOptions) -> torch.Tensor:
        if options.attention not in ATTENTION_MODES:
            raise BadInput(f"unknown --attention {options.attention!r}: use loosened or softmax")
        if options.grad_path not in GRAD_PATHS:
            raise BadInput(f"unknown Grad-ELLM gradient path {options.grad_path!r}: use rows or full")
        layers = select_layers(options.layers, model.config.get_text_config().num_hidden_layers)
        if options.grad_path == "rows":
            scores = attribute_rows(model, targets, layers, options.attention)
            if scores is not None:
                return scores
        return attribute_full(model, targets, layers, options.attention, options.checkpoint)


GRAD_PATHS = ("rows", "full")
ROWS_PER_PASS = 256  # target rows run together in one rows pass (memory grows with it, linearly)
HEATMAP_ELEMENTS = 1 << 23  # rows x heads x keys of one batched heatmap computation (32 MB per float32 temporary)
_FELL_BACK: set[str] = set()


def target_scalars(logits: torch.Tensor, targets: Targets, rows: slice | torch.Tensor) -> torch.Tensor:
    """The explained scalar of each step from its logits over the vocabulary (S, V): target minus contrast."""
    index = torch.arange(logits.shape[0], device=logits.device)
    scalar = logits[index, targets.target_ids[rows].to(logits.device)]
    if targets.contrast_ids is not None:
        scalar = scalar - logits[index, targets.contrast_ids[rows].to(logits.device)]
    return scalar


# -- the reference path: one forward+backward over the whole sequence ------------------------------------


def attribute_full(model, targets: Targets, layers: list[int], attention: str, checkpoint: str = "auto") -> torch.Tensor:
    """Grad-ELLM from one forward pass of the whole sequence with gradients and one backward pass per step.

    The reference that the rows path is tested against, and the fallback for models it cannot serve.
    """
    long_input = wants_checkpointing(checkpoint, targets.input_ids.numel())
    with checkpointed_layers(model, enabled=long_input):
        capture, scalars = forward_with_capture(model, targets)
        rows = {}
        for k in layers:  # keep only the target rows of each gradient, never the full (T, H, D) tensor
            capture.layers[k].output.register_hook(partial(_keep_rows, rows, k, targets.positions))
        earliest = capture.layers[layers[0]].output
        scores = torch.zeros(targets.steps, targets.input_ids.numel())
        for step in range(targets.steps):
            torch.autograd.grad(scalars[step], [earliest], retain_graph=step < targets.steps - 1)
            # .to(): with --device map:auto the layers may sit on several devices
            heatmap = sum(layer_heatmap(capture.layers[k], step, rows[k][step], attention).to(earliest.device) for k in layers)
            scores[step] = heatmap.detach().cpu()
    return scores


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


def attribute_rows(model, targets: Targets, layers: list[int], attention: str) -> torch.Tensor | None:
    """Grad-ELLM from a no-grad cache of the sequence and one forward+backward pass of the target rows.

    Exact for the reason in the method notes: the gradient of the logit at t reaches layer k's
    attention output only at row t, through row t's own residual stream. The cache is the explain
    pipeline's (``targets.prefix``) or filled here. None when this model's masks cannot be built, or
    when the rows' logits disagree with the model's own (a mask or head this module does not know):
    the caller then takes the full path.
    """
    prefix, reference = targets.prefix, targets.target_logits
    if prefix is None or reference is None:
        prefix, logits = fill_cache(model, targets.input_ids, targets.positions)
        reference = logits[torch.arange(targets.steps), targets.target_ids]
    scores = torch.zeros(targets.steps, targets.input_ids.numel())
    for start in range(0, targets.steps, ROWS_PER_PASS):
        rows = torch.arange(start, min(start + ROWS_PER_PASS, targets.steps))
        batch = _rows_batch(model, targets, prefix, rows, reference[rows], layers, attention)
        if batch is None:
            return None
        scores[rows] = batch
    return scores


def _rows_batch(model, targets: Targets, prefix: PrefixCache, rows: torch.Tensor, reference: torch.Tensor, layers, attention):
    """Scores (len(rows), T) of the steps ``rows`` from one rows pass; None to fall back (see above)."""
    device = input_device(model)
    positions = targets.positions[rows]
    dtype = model.get_input_embeddings().weight.dtype
    masks = row_masks(model.config, positions, prefix.length, dtype, device)
    if masks is None:
        return _fall_back(model, "its attention layers are of a kind the rows pass does not know")
    embeds = input_embeddings(model, targets.input_ids[positions]).detach().requires_grad_(True)
    vocab = targets.target_ids[rows][:, None]
    if targets.contrast_ids is not None:
        vocab = torch.cat([vocab, targets.contrast_ids[rows][:, None]], dim=1)
    with torch.enable_grad(), prefix.borrowed() as cache, Capture(rows=torch.arange(rows.numel())) as capture:
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
        heat = sum(layer_heatmaps(capture.layers[k], part, grad[0, part.to(grad.device)], attention).to(device)
                   for k, grad in zip(layers, grads))
        out[part] = heat.detach().cpu()
    return fold_columns(out, positions, prefix.length)


def _agrees(got: torch.Tensor, reference: torch.Tensor, dtype: torch.dtype) -> bool:
    """Whether the rows pass reproduces the model's own target logits (a wrong mask would not: it moves
    them by whole units). Half-precision rounding over many layers moves them by a few tenths."""
    absolute, relative = (1e-3, 1e-3) if dtype in (torch.float32, torch.float64) else (0.5, 5e-2)
    reference = reference.float()
    return bool(((got - reference).abs() <= absolute + relative * reference.abs()).all())


def _fall_back(model, reason: str) -> None:
    """Note once per model type that the full path is used instead (same numbers, more time and memory)."""
    kind = type(model).__name__
    if kind not in _FELL_BACK:
        _FELL_BACK.add(kind)
        warnings.warn(f"Grad-ELLM on {kind}: {reason}; using the full forward+backward path", stacklevel=3)
    return None
