"""Heatmap records read back from JSONL files, for showing them (``gradellm render``, notebooks)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from ..errors import BadInput
from ..jsonl import read_jsonl
from ..schema import HEATMAP, KINDS, not_a_record, validate

SHOWN = ("tokens", "target_token", "target_prob", "target_logit")  # what showing a heatmap needs beyond the schema's required fields


def read_heatmaps(
    path: str, ids: set[str] | None = None, methods: set[str] | None = None, skipped: Counter[str] | None = None
) -> Iterator[dict[str, Any]]:
    """The heatmap records of JSONL file ``path`` (``-``: stdin) with an id in ``ids`` and a method in
    ``methods`` (None: any), each checked against the schema; metric and error records are counted in
    ``skipped`` by kind; a line that is not a gradellm record raises :class:`BadInput` naming it."""
    for line in read_jsonl(path):
        if line.data is None:
            raise BadInput(f"{path}: {line.error}")
        record = line.data
        kind = record.get("kind")
        if kind not in KINDS:
            raise BadInput(f"{path}: line {line.number} {not_a_record(record)}")
        if kind != HEATMAP:
            if skipped is not None:
                skipped[str(kind)] += 1
            continue
        try:
            validate(record, kind=HEATMAP)
        except BadInput as exc:
            raise BadInput(f"{path}: line {line.number}: {exc}") from None
        missing = [key for key in SHOWN if key not in record]
        if missing:
            raise BadInput(f"{path}: line {line.number} is a heatmap record without {missing[0]!r}")
        if ids is not None and str(record["id"]) not in ids:
            continue
        if methods is not None and record["method"] not in methods:
            continue
        yield record
