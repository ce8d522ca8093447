"""DeepLIFT (Shrikumar et al. 2017) through ``captum.attr.DeepLift``, with the all-zero embedding as reference.

What Captum does on these models: DeepLift runs the model once on the input and the reference
stacked into one batch, and replaces the gradient of each *nn.Module* nonlinearity it supports
(ReLU, ELU, LeakyReLU, Sigmoid, Tanh, Softplus, MaxPool, Softmax) by the DeepLIFT multiplier
(rescale rule: delta output / delta input against the reference). Every other operation keeps its
ordinary gradient. Decoder LLMs have none of the supported modules: their activations are SiLU
(Llama/SmolLM2) or GELU-tanh (Gemma) modules, attention's softmax and RMSNorm are functional, and
our target function takes the softmax functionally, so Captum sets no rescale hook at all. The
attribution is then (input - reference) * gradient at the input, which with a zero reference is
exactly Input x Gradient (a test checks this). We keep Captum's behaviour unchanged, as the common
attribution libraries do, rather than inventing DeepLIFT rules for SiLU, GELU or attention.

Each token's score is the L2 norm over the embedding dimension. Cost per step: one forward and one
backward pass of a batch of two copies of the prefix (input and reference).
"""

from __future__ import annotations

import torch
from captum.attr import DeepLift

from . import register
from .base import MethodOptions
from .captum_common import CaptumMethod, TargetScore, prefix_embeddings, quiet


@register
class DeepLiftMethod(CaptumMethod):
    name = "deeplift"
    description = "DeepLIFT (Captum, zero-embedding reference): L2 norm per token; equals Input x Gradient on SiLU/GELU LLMs"

    def raw_attributions(
        self, model, prefix_ids: torch.Tensor, target_id: int, options: MethodOptions, contrast_id: int | None = None
    ) -> torch.Tensor:
        explainer = DeepLift(TargetScore(model, target_id, options.target_fn, contrast_id=contrast_id))
        embeddings = prefix_embeddings(model, prefix_ids)
        return quiet(explainer.attribute, embeddings, baselines=torch.zeros_like(embeddings))[0]
