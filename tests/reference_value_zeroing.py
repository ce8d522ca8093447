"""A deliberately slow, independent Value Zeroing (Mohebbi et al. 2023, as inseq 0.7), used only by the tests.

It shares no code with ``gradellm_cli.methods.value_zeroing``: a model with transformers' plain
``eager`` attention, and for every layer l and every scored token j one forward pass of the whole
prefix with a forward hook on layer l's ``self_attn.v_proj`` that sets row j of its output to zero
(layer l only), and a hook that keeps layer l's output at the target row. Distances are explicit
cosine distances in float64; each layer's row is divided by its sum, then the rows are averaged.
"""

from __future__ import annotations

import torch


class _Stop(Exception):
    pass


def _layer_output(model, input_ids: torch.Tensor, layer: int, row: int, zero: int | None) -> torch.Tensor:
    """Layer ``layer``'s output at ``row`` (float64), with v_proj row ``zero`` of that layer set to 0."""
    decoder = model.model.layers[layer]
    kept = []

    def keep(module, inputs, output):
        kept.append((output[0] if isinstance(output, tuple) else output)[0, row].detach().double())
        raise _Stop

    def zero_row(module, inputs, output):
        output = output.clone()
        output[:, zero] = 0.0
        return output

    handles = [decoder.register_forward_hook(keep)]
    if zero is not None:
        handles.append(decoder.self_attn.v_proj.register_forward_hook(zero_row))
    try:
        with torch.no_grad():
            model(input_ids=input_ids[None], use_cache=False)
    except _Stop:
        pass
    finally:
        for handle in handles:
            handle.remove()
    return kept[0]


def reference_layer_rows(model, input_ids: torch.Tensor, position: int, scored: list[int]) -> torch.Tensor:
    """(layers, len(scored)) normalised rows: the cosine distance of layer l's output at ``position``
    when token j's value is zeroed in layer l alone, divided by the row's sum."""
    prefix = input_ids[: position + 1]
    layers = model.config.get_text_config().num_hidden_layers
    rows = torch.zeros(layers, len(scored), dtype=torch.float64)
    for layer in range(layers):
        clean = _layer_output(model, prefix, layer, position, None)
        for k, token in enumerate(scored):
            perturbed = _layer_output(model, prefix, layer, position, token)
            cosine = torch.dot(clean, perturbed) / (clean.norm() * perturbed.norm())
            rows[layer, k] = max(0.0, 1.0 - float(cosine))
        total = float(rows[layer].sum())
        if total > 0:
            rows[layer] /= total
    return rows
