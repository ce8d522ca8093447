"""The one record schema: heatmap, metric and error records, built and checked here and nowhere else.

Every record gradellm writes is a JSON object with ``schema_version`` and ``kind``:

* **heatmap** (:class:`HeatmapRecord`): one per (input, method, step). ``input_ids`` are exactly the
  ids the model saw for that step (prompt plus the continuation's tokens before the target),
  ``target_id`` the token explained as the next token after the last of them (``target_source``:
  ``label``, ``generated`` or ``given``), ``scores`` one raw score per position of ``input_ids``.
  ``contrast_id``: the token whose logit was subtracted, if any. Chats: ``message_index`` gives each
  position's message (-1: template), ``message_roles`` each message's role (the last one is the reply
  being explained). ``details``: what a method reports beside the scores (UDIG's completeness gap).
* **metric** (:class:`MetricRecord`): one per evaluated heatmap record, keyed like it by (id, model,
  method, step); a generation adds one ``level: "sequence"`` record with ``step`` -1
  (:data:`SEQUENCE_STEP`) averaging its evaluated steps.
* **error** (:class:`ErrorRecord`): why an input, a line or a metric produced no result.

One rule for a record without ``kind``: it is not a gradellm record (a data file, usually), and every
reader refuses it with the same words (:func:`not_a_record`). A sweep adds ``dataset`` in front of the
fields of every record it writes; other fields a record carries that this schema does not name are
kept as they are (``extra``), so reading and writing a record again changes nothing.

``schema_version`` is 1. Fields added since the first release (``target_source``, ``contrast_id``,
``contrast_token``, ``message_index``, ``message_roles``, ``details``) are optional when reading, so
the records of every earlier release validate and are read as they always were.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from .errors import BadInput

SCHEMA_VERSION = 1
HEATMAP = "heatmap"
METRIC = "metric"
ERROR = "error"
KINDS = (HEATMAP, METRIC, ERROR)
SEQUENCE_STEP = -1  # the ``step`` of a generation's sequence-level (averaged) metric record

Key = tuple[str, str, str, int]


def record_key(record: dict[str, Any]) -> Key:
    """(id, model, method, step): what identifies a heatmap record and its metric or error record."""
    return (str(record.get("id")), str(record.get("model")), str(record.get("method")), int(record.get("step", 0)))


def is_classification(record: dict[str, Any]) -> bool:
    """Classification records carry their label words' token ids; generation records carry None."""
    return record.get("label_ids") is not None


def not_a_record(record: Any) -> str:
    """Why ``record`` is refused as a gradellm record, in words a user of a data file recognises."""
    if not isinstance(record, dict):
        return f"is not a JSON object but {type(record).__name__}"
    if "kind" not in record:
        return "has no 'kind' field: not a record from gradellm (a data file? explain it first)"
    return f"has an unknown kind {record.get('kind')!r} (use heatmap, metric or error)"


def not_a_heatmap(record: dict[str, Any]) -> str:
    """Why ``record`` is refused as a heatmap record."""
    if not isinstance(record, dict) or record.get("kind") not in KINDS:
        return not_a_record(record)
    return f"is a {record.get('kind')!r} record, not a heatmap record"


class _Record:
    """What the three record classes share: field order, extra fields, dict round trip."""

    kind: ClassVar[str]
    _LEADING: ClassVar[tuple[str, ...]] = ("dataset",)  # fields a writer may put before schema_version

    def to_dict(self) -> dict[str, Any]:
        """The record as written: ``dataset`` first when there is one, then the schema's fields in order."""
        data = {name: getattr(self, name) for name in self._names()}
        extra = dict(self.extra or {})
        head = {name: extra.pop(name) for name in self._LEADING if name in extra}
        return {**head, "schema_version": SCHEMA_VERSION, "kind": self.kind, **data, **extra}

    @classmethod
    def _names(cls) -> list[str]:
        return [f.name for f in fields(cls) if f.name != "extra"]  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls, record: dict[str, Any]):
        """The record read back (checked with :func:`validate` first); fields the schema does not name go to ``extra``."""
        validate(record, kind=cls.kind)
        names = set(cls._names())
        known = {name: record[name] for name in names if name in record}
        extra = {key: value for key, value in record.items() if key not in names and key not in ("schema_version", "kind")}
        return cls(**known, extra=extra)


@dataclass
class HeatmapRecord(_Record):
    """One heatmap: the scores of every position the model saw for one explained token."""

    kind: ClassVar[str] = HEATMAP
    id: str
    model: str
    method: str
    task: str
    config: dict[str, Any]
    step: int
    steps: int
    prompt_length: int
    input_ids: list[int]
    tokens: list[str]
    source_mask: list[bool]
    target_source: str
    target_id: int
    target_token: str
    target_logit: float
    target_prob: float
    label: str | None
    label_words: list[str] | None
    label_ids: list[int] | None
    contrast_id: int | None
    contrast_token: str | None
    message_index: list[int] | None
    message_roles: list[str] | None
    scores: list[float]
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class MetricRecord(_Record):
    """The metrics of one heatmap record (``level`` token) or one generation (``level`` sequence, step -1)."""

    kind: ClassVar[str] = METRIC
    id: str
    model: str
    method: str
    step: int
    task: str | None
    level: str
    config: dict[str, Any] | None
    extra: dict[str, Any] = field(default_factory=dict)  # the metric values: delta0, soft_ns, auc_pi_soft_ns, ...


@dataclass
class ErrorRecord(_Record):
    """Why an input, an input line or a heatmap's metrics gave no result. ``step`` None: the whole input."""

    kind: ClassVar[str] = ERROR
    id: str | None
    error: str
    model: str | None = None
    method: str | None = None
    step: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # line, config, steps_failed, ...

    def to_dict(self) -> dict[str, Any]:
        # today's order: identity first, then config (when there is one), the reason, then the rest
        extra = dict(self.extra)
        head = {name: extra.pop(name) for name in self._LEADING if name in extra}
        config = {"config": extra.pop("config")} if "config" in extra else {}
        ident = {"id": self.id, "model": self.model, "method": self.method, "step": self.step}
        return {**head, "schema_version": SCHEMA_VERSION, "kind": ERROR, **ident, **config, "error": self.error, **extra}


CLASSES = {HEATMAP: HeatmapRecord, METRIC: MetricRecord, ERROR: ErrorRecord}

# -- builders: every writer makes its records here ----------------------------------------------------


def heatmap_record(*, record_id: str, target_source: str = "label", details: dict[str, Any] | None = None, **values: Any) -> dict[str, Any]:
    """A heatmap record (see :class:`HeatmapRecord` for the fields); the per-token lists must agree in length.

    Optional fields default to None (``label``, ``label_words``, ``label_ids``, ``contrast_id``,
    ``contrast_token``, ``message_index``, ``message_roles``).
    """
    for name in ("label", "label_words", "label_ids", "contrast_id", "contrast_token", "message_index", "message_roles"):
        values.setdefault(name, None)
    extra = {"details": details} if details is not None else {}
    record = HeatmapRecord(id=record_id, target_source=target_source, extra=extra, **values).to_dict()
    problem = _list_problem(record)
    if problem:
        raise ValueError(problem)
    return record


def metric_record(record: dict[str, Any], config: dict[str, Any] | None, values: dict[str, Any], level: str = "token",
                  **head: Any) -> dict[str, Any]:
    """The metric record of heatmap record ``record`` (its id, model, method, step and task), with ``values``."""
    ident = {**base_fields(record), "task": record.get("task")}
    return MetricRecord(**ident, level=level, config=config, extra=dict(values)).to_dict()


def error_record(*, record_id: str | None, reason: str, model: str | None = None, method: str | None = None,
                 step: int | None = None, **context: Any) -> dict[str, Any]:
    """An error record: why ``record_id`` produced no result; ``context`` (line, config, dataset, ...) is kept."""
    return ErrorRecord(id=record_id, error=reason, model=model, method=method, step=step, extra=context).to_dict()


def metric_error(record: dict[str, Any], reason: str, config: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """The error record of a heatmap record whose metrics are undefined. ``config`` (the settings it was
    evaluated with) lets a report tell which configuration the failure belongs to."""
    context = ({"config": config} if config is not None else {}) | extra
    fields_ = base_fields(record)
    return error_record(record_id=fields_["id"], reason=reason, model=fields_["model"], method=fields_["method"],
                        step=fields_["step"], **context)


def base_fields(record: dict[str, Any]) -> dict[str, Any]:
    """The identifying fields every metric or error record copies from its heatmap record."""
    return {"id": record.get("id"), "model": record.get("model"), "method": record.get("method"), "step": record.get("step")}


# -- checks: every reader takes records through here ------------------------------------------------

_HEATMAP_REQUIRED = ("id", "model", "method", "step", "target_id", "input_ids", "source_mask", "scores")
_HEATMAP_LISTS = ("input_ids", "source_mask", "scores")


def validate(record: Any, kind: str | None = None) -> str:
    """Check one record against the schema; return its kind. Raises :class:`BadInput` naming the record.

    ``kind``: the kind the caller needs (a heatmap for ``evaluate``), or None for any. Records of
    schema 1 from every release validate (see the module doc).
    """
    if not isinstance(record, dict) or record.get("kind") not in KINDS:
        raise BadInput(not_a_record(record), record=record.get("id") if isinstance(record, dict) else None)
    found = record["kind"]
    if kind is not None and found != kind:
        raise BadInput(not_a_heatmap(record) if kind == HEATMAP else f"is a {found!r} record, not a {kind} record",
                       record=record.get("id"))
    version = record.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise BadInput(f"schema_version {version!r} is not one this release reads ({SCHEMA_VERSION})", record=record.get("id"))
    _CHECKS[found](record)
    return found


def check_heatmap(record: dict[str, Any]) -> None:
    """Raise :class:`BadInput` (naming the record) unless ``record`` is a usable heatmap record."""
    validate(record, kind=HEATMAP)


def _check_heatmap(record: dict[str, Any]) -> None:
    name = record.get("id")
    for key in _HEATMAP_REQUIRED:
        if record.get(key) is None:
            raise BadInput(f"heatmap record lacks the field {key!r}", record=name)
    if not isinstance(record["step"], int) or isinstance(record["step"], bool) or record["step"] < 0:
        raise BadInput("step must be a non-negative integer", record=name)
    problem = _list_problem(record)
    if problem:
        raise BadInput(problem, record=name)
    if not all(isinstance(i, int) for i in record["input_ids"]):
        raise BadInput("input_ids must be integers", record=name)
    if not all(isinstance(flag, bool) for flag in record["source_mask"]):
        raise BadInput("source_mask must hold true/false flags", record=name)
    if not all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in record["scores"]):
        raise BadInput("scores must be numbers", record=name)
    if not all(math.isfinite(value) for value in record["scores"]):
        raise BadInput("scores must be finite numbers (NaN or infinity found)", record=name)
    labels = record.get("label_ids")
    if labels is not None and (not isinstance(labels, list) or len(labels) < 2 or not all(isinstance(i, int) for i in labels)):
        raise BadInput("label_ids must be a list of at least two token ids (or null for generation)", record=name)


def _list_problem(record: dict[str, Any]) -> str | None:
    """Why the per-token lists (and ``tokens``, ``message_index`` where present) do not have one entry
    per token; None when they do. The builders raise ValueError with it, the readers BadInput."""
    lists = [record[key] for key in _HEATMAP_LISTS]
    if not all(isinstance(value, list) for value in lists) or len({len(value) for value in lists}) != 1 or not lists[0]:
        return "input_ids, source_mask and scores must be lists with one entry per token"
    for optional in ("tokens", "message_index"):
        value = record.get(optional)
        if value is not None and (not isinstance(value, list) or len(value) != len(lists[0])):
            return f"{optional} must have one entry per token"
    return None


def _check_metric(record: dict[str, Any]) -> None:
    name = record.get("id")
    for key in ("id", "model", "method", "step", "level"):
        if record.get(key) is None:
            raise BadInput(f"metric record lacks the field {key!r}", record=name)
    if record["level"] not in ("token", "sequence"):
        raise BadInput(f"metric level {record['level']!r} is not token or sequence", record=name)
    if (record["level"] == "sequence") != (record["step"] == SEQUENCE_STEP):
        raise BadInput(f"a {record['level']}-level metric record cannot have step {record['step']}", record=name)


def _check_error(record: dict[str, Any]) -> None:
    if not isinstance(record.get("error"), str) or not record["error"]:
        raise BadInput("error record lacks its reason ('error')", record=record.get("id"))


_CHECKS = {HEATMAP: _check_heatmap, METRIC: _check_metric, ERROR: _check_error}
