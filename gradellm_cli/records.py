"""The record schemas. Every record carries ``schema_version`` and ``kind``; the README documents each field.

Heatmap record (kind "heatmap"): one per (input, method, step). ``input_ids`` are exactly the ids the
model saw for that step (prompt plus the continuation's tokens before the target), ``target_id`` the
token explained as the next token after the last of them (``target_source``: ``label``, ``generated``
or ``given``), ``scores`` one raw score per position of ``input_ids``. ``contrast_id``: the token whose
logit was subtracted, if any. Chats: ``message_index`` gives each position's message (-1: template),
``message_roles`` each message's role (the last one is the reply being explained).
"""

from __future__ import annotations

from typing import Any

SCHEMA_VERSION = 1
HEATMAP = "heatmap"
METRIC = "metric"
ERROR = "error"


def heatmap_record(
    *,
    record_id: str,
    model: str,
    method: str,
    config: dict[str, Any],
    task: str,
    step: int,
    steps: int,
    prompt_length: int,
    input_ids: list[int],
    tokens: list[str],
    source_mask: list[bool],
    target_id: int,
    target_token: str,
    target_logit: float,
    target_prob: float,
    scores: list[float],
    seconds: float,
    label: str | None = None,
    label_words: list[str] | None = None,
    label_ids: list[int] | None = None,
    target_source: str = "label",
    contrast_id: int | None = None,
    contrast_token: str | None = None,
    message_index: list[int] | None = None,
    message_roles: list[str] | None = None,
) -> dict[str, Any]:
    """Build a heatmap record; lengths of the per-token lists must agree."""
    if not len(input_ids) == len(tokens) == len(source_mask) == len(scores):
        raise ValueError("input_ids, tokens, source_mask and scores must have one entry per token")
    if message_index is not None and len(message_index) != len(input_ids):
        raise ValueError("message_index must have one entry per token")
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": HEATMAP,
        "id": record_id,
        "model": model,
        "method": method,
        "task": task,
        "config": config,
        "step": step,
        "steps": steps,
        "prompt_length": prompt_length,
        "input_ids": input_ids,
        "tokens": tokens,
        "source_mask": source_mask,
        "target_source": target_source,
        "target_id": target_id,
        "target_token": target_token,
        "target_logit": target_logit,
        "target_prob": target_prob,
        "label": label,
        "label_words": label_words,
        "label_ids": label_ids,
        "contrast_id": contrast_id,
        "contrast_token": contrast_token,
        "message_index": message_index,
        "message_roles": message_roles,
        "scores": scores,
        "seconds": seconds,
    }


def error_record(*, record_id: str, reason: str, **context: Any) -> dict[str, Any]:
    """A record saying why an input produced no result (written when bad records are skipped)."""
    return {"schema_version": SCHEMA_VERSION, "kind": ERROR, "id": record_id, "error": reason, **context}
