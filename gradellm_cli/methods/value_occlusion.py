"""Value Occlusion: a leave-one-out occlusion through the values, in every layer at once.

Not Value Zeroing as Mohebbi et al. (EACL 2023) and inseq define it (that is ``value-zeroing``: one
layer at a time, measured at that layer's output). This variant was gradellm's ``value-zeroing`` up
to 0.2.0, and the published paper run's records of it carry this name. Each source token j is scored
for the target position t (the position whose next-token prediction is explained):

    score_j = 1 - cos(h_t, h_t^(-j))

- h_t: the target position's final hidden representation, the output of the model's last norm,
  which is exactly what the LM head reads (``model.base_model(...).last_hidden_state``).
- h_t^(-j): the same with position j's value vectors zeroed **in every layer** at once, through a
  forward hook on each layer's ``self_attn.v_proj`` output (so key/value heads, grouped-query
  attention and any value norm all see the zero). Zeroing in every layer removes everything the
  other positions could read from j through attention anywhere in the network, while j still takes
  its share of each softmax (the difference from deleting j); measuring at the final representation
  ties the score to the prediction. That makes it close to the metrics' own intervention (zeroing a
  token's input), which is why it scores so well on them; the paper's baseline is ``value-zeroing``.
- Only source tokens (``targets.source_mask``) before the explained row are perturbed (the row's own
  token never is, as in the metrics); every other position scores 0, as does
  every position after the target. Each step uses only the prefix ``input_ids[:t+1]``.

Batched: the B = ``options.batch_size`` perturbations of one step run as one batch of B copies of
the prefix, copy b zeroing its own position. Source positions are taken in order, B at a time, and
the positions before the first one of a batch (m) are unaffected by any of its zeroings (causal
attention), so they run once, unbatched, into a key/value cache that the B copies share; only the
positions m..t run B times. Cost per step: one unperturbed forward pass plus one forward pass per
source token j over positions from about j to t (on average about half the prefix when the source
spans the prompt), in ceil(source tokens / B) batched passes; no backward pass.
"""

from __future__ import annotations

import torch

from ..errors import BadInput
from ..kv_cache import cache_argument, returned_cache
from . import register
from .base import Method, MethodOptions, Targets


def value_projections(model) -> list[torch.nn.Module]:
    """Every attention layer's value projection (``...self_attn.v_proj``), in layer order."""
    modules = [module for name, module in model.named_modules() if name.endswith("self_attn.v_proj")]
    if not modules:
        raise BadInput("this method needs attention layers with a self_attn.v_proj module; this model has none")
    return modules


def final_hidden(model, input_ids: torch.Tensor) -> torch.Tensor:
    """(hidden,) final hidden state (after the last norm) at the last position of ``input_ids`` (L,)."""
    return model.base_model(input_ids=input_ids[None], use_cache=False).last_hidden_state[0, -1]


def zeroed_final_hidden(model, prefix: torch.Tensor, zeroed: torch.Tensor) -> torch.Tensor:
    """(B, hidden): the last position's final hidden state, copy b zeroing the values of ``zeroed[b]``.

    ``zeroed`` is ascending; the positions before ``zeroed[0]`` run once into a shared cache.
    """
    count, start = zeroed.numel(), int(zeroed[0])
    cache = None
    if start > 0:
        cache = returned_cache(model.base_model(input_ids=prefix[None, :start], use_cache=True))
        cache.batch_repeat_interleave(count)
    keep = torch.ones(count, prefix.numel() - start, 1, device=prefix.device)
    keep[torch.arange(count, device=prefix.device), zeroed.to(prefix.device) - start] = 0.0
    with ZeroValues(model, keep):
        out = model.base_model(
            input_ids=prefix[None, start:].expand(count, -1), **cache_argument(model.base_model, cache), use_cache=cache is not None
        )
    return out.last_hidden_state[:, -1]


class ZeroValues:
    """Context: while active, multiply every layer's v_proj output by ``keep`` (B, L, 1)."""

    def __init__(self, model, keep: torch.Tensor):
        self.modules = value_projections(model)
        self.keep = keep
        self.handles: list = []

    def _hook(self, module, inputs, output):
        return output * self.keep.to(device=output.device, dtype=output.dtype)  # layers may sit on several devices

    def __enter__(self) -> ZeroValues:
        self.handles = [module.register_forward_hook(self._hook) for module in self.modules]
        return self

    def __exit__(self, *exc) -> None:
        for handle in self.handles:
            handle.remove()


def cosine_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """1 - cos(a, b) along the last dimension, in float64 (small distances survive rounding).

    Clamped at 0: for nearly identical vectors rounding can give about -1e-16, and a negative score
    would make the metrics reject the whole record (they need non-negative importance scores).
    """
    return (1.0 - torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=-1)).clamp_min(0.0)


@register
class ValueOcclusion(Method):
    name = "value-occlusion"
    description = "Value Occlusion: cosine distance of the target's final hidden state, a token's values zeroed in all layers at once"

    def config(self, options: MethodOptions) -> dict:
        return {"zeroed_layers": "all", "distance": "cosine", "representation": "final_hidden"}

    @torch.no_grad()
    def attribute(self, model, targets: Targets, options: MethodOptions) -> torch.Tensor:
        if options.batch_size < 1:
            raise BadInput("`batch_size` must be at least 1")
        value_projections(model)  # fail early on a model without v_proj
        device = model.get_input_embeddings().weight.device
        scores = torch.zeros(targets.steps, targets.input_ids.numel())
        for step in range(targets.steps):
            position = int(targets.positions[step])
            prefix = targets.input_ids[: position + 1].to(device)
            sources = torch.nonzero(targets.source_mask[:position]).flatten()  # the explained row itself is never zeroed
            if sources.numel() == 0:
                continue
            reference = final_hidden(model, prefix)
            for chunk in sources.split(options.batch_size):
                zeroed = zeroed_final_hidden(model, prefix, chunk)
                scores[step, chunk] = cosine_distance(zeroed, reference[None]).float().cpu()
        return scores
