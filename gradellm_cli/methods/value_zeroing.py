"""Value Zeroing (Mohebbi et al., EACL 2023), the paper's baseline, as inseq 0.7 computes it.

For the target row t (the position whose next-token prediction is explained), each layer l and each
source token j before t (the row's own token is never zeroed, as in the metrics): zero j's value
vector in layer l only (every attention weight stays as it is), rerun layer l on its unchanged inputs,
and score j by the cosine distance between layer l's original and perturbed output at row t. Each
layer's row is divided by its sum over the positions scored (the source tokens; a row of zeros stays
zero), and the score is the mean over layers (``--vz-layers all``, inseq 0.7's default) or the last
layer's row (``--vz-layers last``). Template tokens and the continuation's tokens are never zeroed and
score 0, as do positions after t.

How it runs: layer l's output at row t depends on the positions before t only through layer l's
keys and values, which zeroing j in layer l alone does not change before layer l. So a no-grad cache
of the positions before t (:mod:`..prefill`) serves every perturbation, and row t is run alone against
it (:mod:`..row_pass`), as many copies of it at once as there are tokens to zero: copy r sees the
cache and itself, never the other copies, and in layer l its attention gives key j no contribution
(:class:`..capture.ZeroedValues`); the pass stops after layer l. Copy 0 zeroes nothing: the clean
output. Cost: for each layer, one pass of (source tokens + 1) single-position rows through the layers
up to it, about (layers / 2) forward passes of one row per source token; no backward pass.
"""

from __future__ import annotations

import torch

from ..capture import ZeroedValues
from ..errors import BadInput
from ..kv_cache import cache_argument
from ..models import input_device
from ..prefill import PrefixCache, fill_cache
from ..row_pass import row_masks
from . import register
from .base import Method, MethodOptions, Targets
from .value_occlusion import cosine_distance

VZ_LAYERS = ("all", "last")
ROWS_PER_PASS = 256  # copies of the target row run together (each is one position: memory stays small)


class _Stop(Exception):
    """Raised after the layer being measured: the layers above it are not needed."""


def decoder_layers(model) -> list[torch.nn.Module]:
    """The decoder layers, in order (``model.base_model.layers`` in every transformers decoder)."""
    layers = getattr(model.base_model, "layers", None)
    if layers is None:
        raise BadInput("value-zeroing needs a decoder whose layers are model.base_model.layers; this model has none")
    return list(layers)


def normalise_rows(distances: torch.Tensor) -> torch.Tensor:
    """Each layer's row divided by its sum (a row of zeros stays zero)."""
    sums = distances.sum(dim=-1, keepdim=True)
    return torch.where(sums > 0, distances / sums.clamp_min(torch.finfo(distances.dtype).tiny), torch.zeros_like(distances))


def layer_distances(model, input_ids: torch.Tensor, position: int, sources: torch.Tensor) -> torch.Tensor:
    """(layers, len(sources)) float64: cosine distance of each layer's output at row ``position`` when
    the source token ``sources[k]`` has its value zeroed in that layer alone."""
    prefix, _ = fill_cache(model, input_ids[:position])  # nothing before the first position: an empty cache
    layers = decoder_layers(model)
    out = torch.zeros(len(layers), sources.numel(), dtype=torch.float64)
    for layer in range(len(layers)):
        for start in range(0, sources.numel(), ROWS_PER_PASS - 1):
            chunk = sources[start : start + ROWS_PER_PASS - 1]
            outputs = _zeroed_outputs(model, layers, layer, input_ids, position, prefix, chunk)
            out[layer, start : start + chunk.numel()] = cosine_distance(outputs[1:], outputs[0][None]).cpu()
    return out


def _zeroed_outputs(model, layers, layer: int, input_ids, position: int, prefix: PrefixCache, chunk: torch.Tensor) -> torch.Tensor:
    """Layer ``layer``'s output (1 + len(chunk), hidden) at row ``position``: copy 0 clean, copy r with
    the value of ``chunk[r - 1]`` zeroed in that layer (the key column of a cached position, or the
    copy's own column when the token is the target row itself)."""
    device = input_device(model)
    rows = chunk.numel() + 1
    own = prefix.length + torch.arange(rows)
    columns = torch.cat([torch.tensor([-1]), torch.where(chunk < position, chunk, own[1:])])
    positions = torch.full((rows,), position)
    masks = row_masks(model.config, positions, prefix.length, model.get_input_embeddings().weight.dtype, device)
    if masks is None:
        raise BadInput("value-zeroing: this model's attention layers are of a kind it cannot mask row by row")
    kept: list[torch.Tensor] = []

    def keep_and_stop(module, inputs, output):
        kept.append((output[0] if isinstance(output, tuple) else output)[0].detach())
        raise _Stop

    handle = layers[layer].register_forward_hook(keep_and_stop)
    try:
        with torch.no_grad(), prefix.borrowed() as cache, ZeroedValues(layer, columns):
            model.base_model(
                input_ids=input_ids[position].expand(rows)[None].to(device),
                position_ids=positions[None].to(device),
                attention_mask=masks,
                use_cache=True,
                **cache_argument(model.base_model, cache),
            )
    except _Stop:
        pass
    finally:
        handle.remove()
    return kept[0]


@register
class ValueZeroing(Method):
    name = "value-zeroing"
    description = (
        "Value Zeroing (Mohebbi et al. 2023, as inseq): a token's values zeroed in one layer at a time, cosine distance of "
        "that layer's output at the target row; each layer's row normalised, mean over layers (--vz-layers)"
    )

    def config(self, options: MethodOptions) -> dict:
        return {"vz_layers": options.vz_layers, "distance": "cosine", "representation": "layer_output"}

    def check(self, options: MethodOptions) -> None:
        if options.vz_layers not in VZ_LAYERS:
            raise BadInput(f"unknown `vz_layers` {options.vz_layers!r}: use all or last")

    def attribute(self, model, targets: Targets, options: MethodOptions) -> torch.Tensor:
        if options.vz_layers not in VZ_LAYERS:
            raise BadInput(f"unknown `vz_layers` {options.vz_layers!r}: use all or last")
        scores = torch.zeros(targets.steps, targets.input_ids.numel())
        for step in range(targets.steps):
            position = int(targets.positions[step])
            sources = torch.nonzero(targets.source_mask[:position]).flatten()  # the explained row itself is never zeroed
            if sources.numel() == 0:
                continue
            rows = normalise_rows(layer_distances(model, targets.input_ids, position, sources))
            scores[step, sources] = (rows.mean(dim=0) if options.vz_layers == "all" else rows[-1]).float()
        return scores
