"""Log-odds, Comprehensiveness and Sufficiency of the top-k source tokens, and the word approximation error.

The metrics of the DIG and UDIG papers, as their public evaluation code computes them, for a decoder
LLM: the prediction is the record's target token at its explained position (the label word a
classification record explains, or a generation step's token), p is its probability under the full
next-token distribution, and only source tokens are ever touched (the template, the generated
prefix and the explained position itself stay).

* top-k: the ``floor(m * topk)`` source tokens with the highest scores (``--topk``, default 0.2, as
  the public code's ``int(m * 20 / 100)``; ties go to the earlier token). When that is 0 (fewer than
  five source tokens at 20%) nothing is perturbed and all three are 0, as in that code; the record
  says so with ``topk_tokens``.
* Log-odds: the top-k tokens' embeddings replaced by the baseline token's (the path methods'
  baseline: the model's mask token, else unk, pad or eos; ``--baseline-token``);
  log p(perturbed) - log p(input). Lower is better.
* Comprehensiveness: the top-k tokens deleted from the sequence (later tokens move up, positions
  renumbered); p(input) - p(deleted). Higher is better.
* Sufficiency: every other source token deleted (the top-k and everything that is not source stay);
  p(input) - p(kept). Lower is better.
* WAE: not measured here but copied from the heatmap record (``details.wae``), which path methods
  (``udig``, ``dig``) write: the mean distance from their path points to the nearest vocabulary word.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..methods.base import input_embeddings
from .errors import MetricError
from .masks import ranking
from .normalise import normalise_scores, source_positions

TOPK_METRICS = ("log-odds", "comprehensiveness", "sufficiency")
FIELDS = {"log-odds": "log_odds", "comprehensiveness": "comprehensiveness", "sufficiency": "sufficiency"}


def top_positions(record: dict[str, Any], topk: float) -> np.ndarray:
    """Positions (in the record's sequence) of its top ``floor(m * topk)`` source tokens, best first."""
    positions = source_positions(record["source_mask"])
    scores = normalise_scores(record["scores"], record["source_mask"])
    count = int(positions.size * topk + 1e-9)  # floor; the epsilon keeps 0.2 * 10 from becoming 1.999...
    return positions[ranking(scores)[:count]]


@torch.inference_mode()
def _log_probability(model, embeddings: torch.Tensor, target_id: int) -> float:
    """log p(target) after the last position of ``embeddings`` (T, d), under the full vocabulary."""
    logits = model(inputs_embeds=embeddings[None], use_cache=False, logits_to_keep=1).logits[0, -1].float()
    return float(torch.log_softmax(logits, dim=-1)[target_id])


def topk_metrics(model, record: dict[str, Any], names: tuple[str, ...], topk: float, baseline_id: int | None) -> dict[str, Any]:
    """The requested top-k metrics of one checked heatmap record; raises MetricError where undefined."""
    wanted = [name for name in names if name in TOPK_METRICS]
    if not wanted:
        return {}
    top = top_positions(record, topk)
    out: dict[str, Any] = {"topk_tokens": int(top.size)}
    if top.size == 0:
        return out | {FIELDS[name]: 0.0 for name in wanted}
    ids = torch.as_tensor(record["input_ids"], dtype=torch.long)
    with torch.inference_mode():
        embeddings = input_embeddings(model, ids)[0]
    target = int(record["target_id"])
    original = _log_probability(model, embeddings, target)
    if "log-odds" in wanted:
        if baseline_id is None:
            raise MetricError("Log-odds needs a baseline token, and none was given")
        replaced = embeddings.clone()
        with torch.inference_mode():
            replaced[torch.from_numpy(top)] = input_embeddings(model, torch.tensor([baseline_id]))[0, 0]
        out["log_odds"] = _log_probability(model, replaced, target) - original
    keep = np.ones(ids.numel(), dtype=bool)
    if "comprehensiveness" in wanted:
        deleted = keep.copy()
        deleted[top] = False
        out["comprehensiveness"] = float(np.exp(original) - np.exp(_log_probability(model, embeddings[torch.from_numpy(deleted)], target)))
    if "sufficiency" in wanted:
        kept = keep.copy()
        kept[source_positions(record["source_mask"])] = False
        kept[top] = True
        out["sufficiency"] = float(np.exp(original) - np.exp(_log_probability(model, embeddings[torch.from_numpy(kept)], target)))
    return out


def word_approximation_error(record: dict[str, Any]) -> float:
    """The heatmap record's path WAE (``details.wae``); MetricError for a method without paths."""
    details = record.get("details")
    value = details.get("wae") if isinstance(details, dict) else None
    if not isinstance(value, (int, float)):
        raise MetricError("WAE is defined for path methods (udig, dig) only: this record has no path")
    return float(value)
