"""Heatmap records in, metric and error records out: checking, keys and builders."""

from __future__ import annotations

from typing import Any

from ..errors import BadInput
from ..records import ERROR, HEATMAP, METRIC, SCHEMA_VERSION

SEQUENCE_STEP = -1  # the ``step`` of a generation's sequence-level (averaged) metric record

_LISTS = ("input_ids", "source_mask", "scores")


def record_key(record: dict[str, Any]) -> tuple[str, str, str, int]:
    """(id, model, method, step): what identifies a heatmap record and its metric or error record."""
    return (str(record.get("id")), str(record.get("model")), str(record.get("method")), int(record.get("step", 0)))


def is_classification(record: dict[str, Any]) -> bool:
    """Classification records carry their label words' token ids; generation records carry None."""
    return record.get("label_ids") is not None


def not_a_heatmap(record: dict[str, Any]) -> str:
    """Why ``record`` is refused as a heatmap record, in words a user of a data file recognises."""
    if "kind" not in record:
        return "has no 'kind' field: not a heatmap record from `gradellm explain` (a data file? explain it first)"
    return f"is a {record.get('kind')!r} record, not a heatmap record"


def check_heatmap(record: dict[str, Any]) -> None:
    """Raise :class:`BadInput` (naming the record) unless ``record`` is a usable heatmap record."""
    name = record.get("id")
    if record.get("kind") != HEATMAP:
        raise BadInput(not_a_heatmap(record), record=name)
    for field in ("id", "model", "method", "step", "target_id", *_LISTS):
        if record.get(field) is None:
            raise BadInput(f"heatmap record lacks the field {field!r}", record=name)
    if not isinstance(record["step"], int) or record["step"] < 0:
        raise BadInput("step must be a non-negative integer", record=name)
    lists = [record[field] for field in _LISTS]
    if not all(isinstance(value, list) for value in lists) or len({len(value) for value in lists}) != 1 or not lists[0]:
        raise BadInput("input_ids, source_mask and scores must be lists with one entry per token", record=name)
    if not all(isinstance(i, int) for i in record["input_ids"]):
        raise BadInput("input_ids must be integers", record=name)
    if not all(isinstance(flag, bool) for flag in record["source_mask"]):
        raise BadInput("source_mask must hold true/false flags", record=name)
    if not all(isinstance(value, (int, float)) for value in record["scores"]):
        raise BadInput("scores must be numbers", record=name)
    labels = record.get("label_ids")
    if labels is not None and (not isinstance(labels, list) or len(labels) < 2 or not all(isinstance(i, int) for i in labels)):
        raise BadInput("label_ids must be a list of at least two token ids (or null for generation)", record=name)


def base_fields(record: dict[str, Any]) -> dict[str, Any]:
    """The identifying fields every metric or error record copies from its heatmap record."""
    return {"id": record.get("id"), "model": record.get("model"), "method": record.get("method"), "step": record.get("step")}


def metric_record(record: dict[str, Any], config: dict[str, Any], values: dict[str, Any], level: str = "token") -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": METRIC,
        **base_fields(record),
        "task": record.get("task"),
        "level": level,
        "config": config,
        **values,
    }


def metric_error(record: dict[str, Any], reason: str, config: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """An error record for a heatmap record whose metrics are undefined. ``config`` (the settings it
    was evaluated with) lets a report tell which configuration the failure belongs to."""
    head = {"schema_version": SCHEMA_VERSION, "kind": ERROR, **base_fields(record)}
    return {**head, **({"config": config} if config is not None else {}), "error": reason, **extra}
