"""What the Captum baselines share: the target function, the prefix of each step and the L2 reduction.

Every gradient baseline (saliency, input x gradient, integrated gradients, DeepLIFT, layer gradient x
activation) runs Captum's own implementation on one step at a time: the prefix
``input_ids[:positions[s]+1]`` goes in as input embeddings, and the forward function returns the
target's softmax probability (default) or its logit at the last position, one number per batch row
(minus the contrast token's probability or logit, for a contrastive target).
Captum's attribution (prefix length x embedding dimension) is reduced to one score per token with the
L2 norm over the embedding dimension (method notes, "Score normalisation").
"""

from __future__ import annotations

import warnings
from abc import abstractmethod
from typing import Any

import torch
from torch import nn

from ..errors import BadInput
from .base import Method, MethodOptions, Targets, input_embeddings

TARGET_FUNCTIONS = ("probability", "logit")


def check_target_fn(target_fn: str) -> str:
    if target_fn not in TARGET_FUNCTIONS:
        raise BadInput(f"unknown `target_fn` {target_fn!r}: use probability or logit")
    return target_fn


class TargetScore(nn.Module):
    """``inputs_embeds`` (N, L, d) -> (N,) float32: the target's probability or logit after the last position.

    An ``nn.Module`` (not a plain function) because Captum's DeepLift hooks the modules of the model it
    is given; the wrapped model is a submodule, so Captum sees every layer. With ``from_ids`` the
    forward takes token ids instead (for layer methods, which hook the embedding layer themselves).
    Only the last position's logits are computed (``logits_to_keep=1``), which matters for Gemma's
    262k-word vocabulary.
    """

    def __init__(
        self, model, target_id: int, target_fn: str = "probability", from_ids: bool = False, contrast_id: int | None = None
    ):
        super().__init__()
        self.model = model
        self.target_id = int(target_id)
        self.contrast_id = None if contrast_id is None else int(contrast_id)
        self.target_fn = check_target_fn(target_fn)
        self.from_ids = from_ids

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        key = "input_ids" if self.from_ids else "inputs_embeds"
        logits = self.model(**{key: inputs}, use_cache=False, logits_to_keep=1).logits[:, -1].float()
        values = torch.softmax(logits, dim=-1) if self.target_fn == "probability" else logits
        if self.contrast_id is None:
            return values[:, self.target_id]
        return values[:, self.target_id] - values[:, self.contrast_id]


def prefix_embeddings(model, prefix_ids: torch.Tensor) -> torch.Tensor:
    """(1, L, d) input embeddings of one prefix, detached (Captum makes its own gradient leaves)."""
    return input_embeddings(model, prefix_ids).detach()


class CaptumMethod(Method):
    """A baseline computed by one Captum attribution per step, reduced with the L2 norm per token."""

    def config(self, options: MethodOptions) -> dict[str, Any]:
        return {"target_fn": options.target_fn}

    def check(self, options: MethodOptions) -> None:
        check_target_fn(options.target_fn)

    @abstractmethod
    def raw_attributions(
        self, model, prefix_ids: torch.Tensor, target_id: int, options: MethodOptions, contrast_id: int | None = None
    ) -> torch.Tensor:
        """Captum's un-reduced attribution (L, d) for the next token after ``prefix_ids`` (L,); with
        ``contrast_id``, of the target's score minus the contrast token's."""

    def attribute(self, model, targets: Targets, options: MethodOptions) -> torch.Tensor:
        check_target_fn(options.target_fn)
        scores = torch.zeros(targets.steps, targets.input_ids.numel())
        for step in range(targets.steps):
            end = int(targets.positions[step]) + 1
            contrast = None if targets.contrast_ids is None else int(targets.contrast_ids[step])
            raw = self.raw_attributions(model, targets.input_ids[:end], int(targets.target_ids[step]), options, contrast)
            scores[step, :end] = raw.detach().float().norm(dim=-1).cpu()
        return scores


# Captum's routine notices, expected on every call: DeepLift announces the hooks it sets, and every
# method notes that it switched on requires_grad for the input (we hand it detached embeddings).
_ROUTINE_WARNINGS = (r"(?s)Setting forward, backward hooks", r"(?s).*did not already require gradients")


def quiet(call, *args, **kwargs):
    """Run a Captum call with gradients on, silencing only Captum's routine notices."""
    with torch.enable_grad(), warnings.catch_warnings():
        for message in _ROUTINE_WARNINGS:
            warnings.filterwarnings("ignore", message=message)
        return call(*args, **kwargs)
