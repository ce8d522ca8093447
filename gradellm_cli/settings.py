"""The settings of explaining: plain dataclasses, importable without torch.

:class:`MethodOptions` are the attribution methods' options (each method reports the ones it uses in
its records' ``config``); :class:`ExplainSettings` everything else that decides what is explained.
The metric settings are :class:`gradellm_cli.metrics.settings.MetricSettings`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DEFAULT_SOURCE_ROLES = ("user",)  # chats: the roles whose content is attributed and perturbed


@dataclass
class MethodOptions:
    """Options shared by the methods; each method reports the ones it uses in ``config``."""

    layers: str = "all"
    attention: str = "loosened"
    similarity: str = "rope-qk"  # Grad-ELLM token weights: rope-qk (the paper's text) or raw-cosine (the authors' code)
    grad_at: str = "pre-o"  # Grad-ELLM channel weights: gradient before o_proj (the paper's text) or after it (post-o)
    kv_expansion: str = "grouped"  # Grad-ELLM grouped-query keys/values: grouped (as the model) or tiled
    ig_steps: int = 50
    target_fn: str = "probability"
    seed: int = 0
    batch_size: int = 16
    checkpoint: str = "auto"  # gradient checkpointing of the full backward path: auto (long inputs), on, off
    grad_path: str = "rows"  # Grad-ELLM: rows (the target rows against a cache) or full (forward+backward of everything)
    attention_layers: str = "last"  # attention baseline: the last layer's row, or the mean of every layer's
    vz_layers: str = "all"  # value-zeroing: the mean over all layers' normalised rows, or the last layer's
    dig_steps: int = 30  # udig/dig: anchors per path (m)
    neighbours: int = 30  # udig/dig: nearest vocabulary rows considered per anchor (k)
    strategy: str = "greedy"  # udig/dig: anchor choice, greedy or maxcount
    upscale: int = 0  # udig/dig: times a midpoint is inserted between consecutive path points
    baseline_token: str | None = None  # udig/dig: the baseline token (default: mask, unk, pad or eos token)
    extra: dict[str, Any] = field(default_factory=dict)



@dataclass
class ExplainSettings:
    """Everything that decides what is explained and how; written into each record's ``config``.

    ``task`` None means ``sentiment``, or ``generate`` for an input with a continuation; an input
    with messages is a chat whatever the task. ``contrast``: a word (one token) or, for a
    continuation, a text of as many tokens, whose logit (or probability) is subtracted from the target's.
    """

    task: str | None = "sentiment"
    target: str = "predicted"  # predicted | gold | a word
    max_new_tokens: int = 20
    methods: list[str] = field(default_factory=lambda: ["grad-ellm"])
    options: MethodOptions = field(default_factory=MethodOptions)
    source_roles: tuple[str, ...] = DEFAULT_SOURCE_ROLES
    contrast: str | None = None

    def task_for(self, continuation: bool = False, chat: bool = False) -> str:
        """The task an input is explained with (see the class doc)."""
        if chat:
            return "chat"
        if self.task is None:
            return "generate" if continuation else "sentiment"
        return self.task
