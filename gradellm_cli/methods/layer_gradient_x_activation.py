"""Layer Gradient x Activation on the embedding layer, through ``captum.attr.LayerGradientXActivation``.

Captum runs the model from token ids, records the output a of the model's input-embedding layer
(``model.get_input_embeddings()``, with Gemma's embedding scaling included) and the gradient of f
(the target's probability by default, or its logit) with respect to it, and returns a * d f / d a
elementwise. Each token's score is the L2 norm over the embedding dimension. On the embedding layer
this is mathematically Input x Gradient; the two differ only in where Captum takes the gradient
(a hook on the layer, rather than an embedding tensor given as input). One forward and one backward
pass on the step's prefix, per step.
"""

from __future__ import annotations

import torch
from captum.attr import LayerGradientXActivation

from . import register
from .base import MethodOptions
from .captum_common import CaptumMethod, TargetScore, quiet


@register
class LayerGradientXActivationMethod(CaptumMethod):
    name = "layer-gradient-x-activation"
    description = "Layer Gradient x Activation (Captum) on the embedding layer: L2 norm of activation * gradient"

    def raw_attributions(
        self, model, prefix_ids: torch.Tensor, target_id: int, options: MethodOptions, contrast_id: int | None = None
    ) -> torch.Tensor:
        forward = TargetScore(model, target_id, options.target_fn, from_ids=True, contrast_id=contrast_id)
        explainer = LayerGradientXActivation(forward, model.get_input_embeddings())
        ids = prefix_ids.to(model.get_input_embeddings().weight.device)[None]
        return quiet(explainer.attribute, ids)[0]
