"""The one interface every attribution method implements.

A method receives the exact token ids the model sees (prompt plus generated prefix), the positions
whose next-token prediction is explained, and the target token at each; it returns one score per
position of ``input_ids`` for each target, on the CPU as float32. Positions after a target get 0.
Methods never decide targets or prompts: that is the explain pipeline's job, so all methods explain
exactly the same thing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from ..settings import MethodOptions  # noqa: F401 - re-exported: methods take their options from here

if TYPE_CHECKING:
    from ..prefill import PrefixCache


@dataclass
class Targets:
    """What to explain: ``target_ids[s]`` as the next token after position ``positions[s]``.

    With ``contrast_ids`` the explained scalar of step s is the target's logit (or probability)
    minus the contrast token's. ``prefix`` and ``target_logits`` are what the explain pipeline's
    own forward pass already computed (a cache of the whole sequence and each target's logit), which
    methods may reuse instead of running that pass again; methods never need them.
    """

    input_ids: torch.Tensor  # (T,) long
    positions: torch.Tensor  # (S,) long, ascending
    target_ids: torch.Tensor  # (S,) long
    source_mask: torch.Tensor  # (T,) bool
    contrast_ids: torch.Tensor | None = None  # (S,) long
    prefix: PrefixCache | None = None
    target_logits: torch.Tensor | None = None  # (S,) float32
    tokenizer: Any = None  # the model's tokenizer, for methods that name a token (the path methods' baseline)
    record_id: str = ""  # the input's id: seeds what a method draws at random (the random baseline), per input

    @property
    def steps(self) -> int:
        return int(self.positions.numel())


@dataclass
class Attribution:
    """Scores (steps, T) with a dict per step of what else the method measured (``details`` in the
    record: the path methods' completeness gap and word approximation error)."""

    scores: torch.Tensor
    details: list[dict[str, Any]]


class Method(ABC):
    """An attribution method. Subclasses set ``name`` and ``description`` and register themselves."""

    name: ClassVar[str]
    description: ClassVar[str]

    @abstractmethod
    def attribute(self, model, targets: Targets, options: MethodOptions) -> torch.Tensor:
        """Return scores of shape (steps, T), float32 on the CPU."""

    def attribute_with_details(self, model, targets: Targets, options: MethodOptions) -> Attribution:
        """The scores and, per step, what else the method measured (written into the records as
        ``details``); methods that measure nothing else need not override this."""
        return Attribution(self.attribute(model, targets, options), [])

    def config(self, options: MethodOptions) -> dict[str, Any]:
        """The options that change this method's numbers, written into every record."""
        return {}

    def check(self, options: MethodOptions) -> None:
        """Refuse, with a one-line BadInput, option values this method cannot take, before any model
        loads (what needs the model, such as a layer number beyond its depth, is checked later)."""
        return None


def input_embeddings(model, input_ids: torch.Tensor) -> torch.Tensor:
    """The model's own input embeddings of ``input_ids`` (with any scaling the model applies, as Gemma's)."""
    device = model.get_input_embeddings().weight.device
    return model.get_input_embeddings()(input_ids.to(device)[None])


def zero_after_targets(scores: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """Zero every score at a position after its row's target position (the model cannot see it)."""
    columns = torch.arange(scores.shape[1])
    return scores.masked_fill(columns[None, :] > positions.cpu()[:, None], 0.0)
