"""What ``explain`` reads: inputs from a text, a JSONL file or a data set, checked as far as they can be without a model.

One id rule for every JSONL file, given with ``--input`` or as ``--dataset FILE.jsonl`` (both read by
:func:`gradellm_cli.jsonl.read_jsonl`): a record's id is its id field, else ``line-N``, N its 1-based
line number in the file (:func:`gradellm_cli.jsonl.line_id`). Records of other data files (CSV, JSON,
Parquet) without an id are ``row-N``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import BadInput
from ..jsonl import check_input, count_lines, line_id, read_jsonl

TEXT_ID = "text-1"  # the id of the one input of a TEXT argument


@dataclass
class ExplainInput:
    """One input to explain: task fields (``values``) or a chat (``messages``), with any given continuation.

    ``error``: why the input cannot be explained, found as it was read (it is reported, not explained).
    """

    record_id: str
    values: dict[str, str] | None
    label: str | None = None
    error: str | None = None
    continuation: str | None = None
    messages: list[dict[str, Any]] | None = None


@dataclass(frozen=True)
class InputFields:
    """Which field of a JSONL record holds what (:data:`DEFAULT_FIELDS`: the command line's defaults)."""

    text: str
    id: str
    label: str
    continuation: str
    messages: str


DEFAULT_FIELDS = InputFields(text="text", id="id", label="label", continuation="continuation", messages="messages")


def text_input(text: str, continuation: str | None = None) -> Iterator[ExplainInput]:
    """The one input of a text (and a given continuation)."""
    yield ExplainInput(TEXT_ID, {"text": text}, None, continuation=continuation)


def dataset_inputs(records: Iterable[dict[str, Any]]) -> Iterator[ExplainInput]:
    """Inputs from the records of :func:`gradellm_cli.data.load_records` (a data set)."""
    for record in records:
        yield ExplainInput(
            record["id"], record["values"], record["label"], continuation=record.get("continuation"), messages=record.get("messages")
        )


def jsonl_inputs(path: str, settings, fields: InputFields = DEFAULT_FIELDS) -> Iterator[ExplainInput]:
    """Inputs from a JSONL file (``-``: stdin), one per line; a line that cannot be used carries its ``error``.

    ``settings``: the :class:`~gradellm_cli.settings.ExplainSettings` (its task decides the fields a
    record needs; its source roles are checked against a chat's messages). A missing file or a folder
    is refused at once, before the first input is asked for.
    """
    check_input(path)
    return _jsonl_lines(path, settings, fields)


def count_inputs(path: str) -> int | None:
    """The number of lines of a JSONL file, for a progress bar; None for stdin."""
    return count_lines(path)


def _jsonl_lines(path: str, settings, fields: InputFields) -> Iterator[ExplainInput]:
    for line in read_jsonl(path):
        if line.data is None:
            yield ExplainInput(line_id(line.number), None, None, line.error)
            continue
        yield jsonl_record(line.data, line.number, settings, fields)


def jsonl_record(data: dict[str, Any], number: int, settings, fields: InputFields = DEFAULT_FIELDS) -> ExplainInput:
    """One JSONL record as an input: a chat (a messages field) or the task's fields, with any continuation."""
    from ..chat import check_chat
    from ..prompts import get_task

    record_id = str(data.get(fields.id, line_id(number)))
    continuation = data.get(fields.continuation)
    if continuation is not None and not isinstance(continuation, str):
        return ExplainInput(record_id, None, None, f"line {number}: the field {fields.continuation!r} is not text")
    if continuation is not None and not continuation:
        return ExplainInput(record_id, None, None, f"line {number}: the continuation is empty")
    if fields.messages in data:
        try:  # what needs no model is checked as the record is read
            check_chat(data[fields.messages], settings.source_roles)
        except BadInput as exc:
            return ExplainInput(record_id, None, None, f"line {number}: {exc.message}")
        return ExplainInput(record_id, None, None, continuation=continuation, messages=data[fields.messages])
    task = get_task(settings.task_for(continuation=continuation is not None))
    values = {name: data.get(fields.text if name == "text" else name) for name in task.fields}
    missing = [name for name, value in values.items() if not isinstance(value, str)]
    if missing:
        wanted = fields.text if missing[0] == "text" else missing[0]
        return ExplainInput(record_id, None, None, f"line {number} has no text field {wanted!r}")
    label = data.get(fields.label)
    return ExplainInput(record_id, values, None if label is None else str(label), continuation=continuation)


def first_checked(inputs: Iterable[ExplainInput], stop_on_error: bool) -> Iterator[ExplainInput]:
    """The inputs, the first one read now: when errors stop the run, a first input that is bad as read
    fails before anything expensive (the model) is loaded."""
    inputs = iter(inputs)
    first = next(inputs, None)
    if first is not None and first.error and stop_on_error:
        raise BadInput(first.error, record=first.record_id)
    return inputs if first is None else itertools.chain([first], inputs)
