"""Input x Gradient (Shrikumar et al. 2016) through ``captum.attr.InputXGradient``.

Captum returns e_i * d f / d e_i elementwise for every input embedding e_i (with Gemma's embedding
scaling included, since the model's own embedding layer produces e), where f is the target's
probability (default) or logit; each token's score is the L2 norm over the embedding dimension.
One forward and one backward pass on the step's prefix, per step.
"""

from __future__ import annotations

import torch
from captum.attr import InputXGradient

from . import register
from .base import MethodOptions
from .captum_common import CaptumMethod, TargetScore, prefix_embeddings, quiet


@register
class InputXGradientMethod(CaptumMethod):
    name = "input-x-gradient"
    description = "Input x Gradient (Captum): L2 norm of embedding * gradient of the target probability/logit"

    def raw_attributions(
        self, model, prefix_ids: torch.Tensor, target_id: int, options: MethodOptions, contrast_id: int | None = None
    ) -> torch.Tensor:
        explainer = InputXGradient(TargetScore(model, target_id, options.target_fn, contrast_id=contrast_id))
        return quiet(explainer.attribute, prefix_embeddings(model, prefix_ids))[0]
