"""Saliency (Simonyan et al. 2014) through ``captum.attr.Saliency``.

Captum returns |d f / d e_i| for every input-embedding element (``abs=True``, its default), where f
is the target's probability (default) or logit; each token's score is the L2 norm of that vector
over the embedding dimension, i.e. the norm of the gradient. One forward and one backward pass on
the step's prefix, per step.
"""

from __future__ import annotations

import torch
from captum.attr import Saliency as CaptumSaliency

from . import register
from .base import MethodOptions
from .captum_common import CaptumMethod, TargetScore, prefix_embeddings, quiet


@register
class SaliencyMethod(CaptumMethod):
    name = "saliency"
    description = "Saliency (Captum): L2 norm of the gradient of the target probability/logit w.r.t. each input embedding"

    def raw_attributions(
        self, model, prefix_ids: torch.Tensor, target_id: int, options: MethodOptions, contrast_id: int | None = None
    ) -> torch.Tensor:
        explainer = CaptumSaliency(TargetScore(model, target_id, options.target_fn, contrast_id=contrast_id))
        return quiet(explainer.attribute, prefix_embeddings(model, prefix_ids), abs=True)[0]
