"""``evaluate_to``: heatmap records -> metric records appended to a JSONL file, resumable, one writer at a time;
``evaluate_stream``: the same for records in memory, yielded.

The one evaluate loop (:func:`evaluate_records`): ``gradellm evaluate``, :func:`evaluate_to` and the
Python API's :func:`gradellm_cli.evaluate` all run it. For each heatmap record it checks the record
against the schema, passes over what is not evaluated (explain's error records, generation steps
between ``gen_stride``), refuses a record seen twice, keeps what an earlier run wrote, and measures
the rest; at the end come the sequence-level records of the generations.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import BadInput, GradellmError
from ..jsonl import JsonlWriter, check_input, check_output, completed_lines, count_lines, read_jsonl
from ..locks import sole_writer, truncate_for_overwrite
from ..progress import paused, progress_bar
from ..schema import ERROR, METRIC, check_heatmap, error_record, record_key
from .explaining import RunSummary

if TYPE_CHECKING:
    from ..metrics.settings import MetricSettings

RESUMED = "resumed"  # what a step is for a record an earlier run evaluated (the progress bar's rate leaves it out)


@dataclass
class Step:
    """One input line's outcome: a record to write (metric or error), nothing, or a failure."""

    number: int
    record: dict[str, Any] | None = None
    resumed: bool = False
    failure: GradellmError | None = None
    source: dict[str, Any] | None = None  # the heatmap record as read (None for a line that could not be)


class OtherHeatmaps(BadInput):
    """The output holds metrics of heatmaps other than these: the heatmap file was remade since (other
    options), so resuming would keep numbers that do not belong to it. Stops the run even when errors
    are skipped: every later line would be wrong in the same way."""


def evaluate_records(
    lines: Iterable[tuple[int, dict[str, Any] | None, str | None]],
    evaluator,
    done: dict | None = None,
) -> Iterator[Step]:
    """The one evaluate loop: a :class:`Step` per input line ``(number, record or None, read error)``,
    then a step per sequence-level record (number 0). ``done``: records an earlier run wrote, by key."""
    done = done if done is not None else {}
    seen: set[tuple] = set()
    for number, record, error in lines:
        try:
            result = _one(evaluator, number, error, record, done, seen)
        except GradellmError as exc:
            yield Step(number, failure=exc, source=record)
            continue
        yield Step(number, record=result if isinstance(result, dict) else None, resumed=result is RESUMED, source=record)
    for record in evaluator.finish(done):
        yield Step(0, record=record)


def evaluate_to(
    output: str | Path,
    heatmaps: str | Path,
    evaluator,
    *,
    device: str = "auto",
    specs: dict[str, str] | None = None,
    overwrite: bool = False,
    stop_on_error: bool = False,
    on_skip: Callable[[GradellmError], None] | None = None,
    on_record: Callable[[dict[str, Any]], None] | None = None,
) -> RunSummary:
    """Evaluate the heatmap records of JSONL file ``heatmaps`` (``-``: stdin) into ``output`` (``-``: stdout).

    ``evaluator``: the :class:`~gradellm_cli.metrics.settings.MetricSettings` to measure with (the
    records' models are then loaded on ``device``, each once; ``specs`` maps a model name the records use
    to what to load), a :class:`~gradellm_cli.metrics.Evaluator`, or a function that makes one, called
    once the output is locked. A line that cannot be evaluated gets an error record in the output and
    is reported to ``on_skip`` (or raises, with ``stop_on_error``); it is tried again by a rerun.
    ``on_record`` sees each metric or error record as it is written.
    """
    heatmaps, output = str(heatmaps), str(output)
    check_input(heatmaps)
    check_output(output)
    with sole_writer(output):
        evaluator = _evaluator(evaluator, device, specs)
        done = resume_records(output, overwrite, evaluator.settings)
        return _run(evaluator, heatmaps, output, done, stop_on_error, on_skip, on_record)


def _evaluator(given, device: str, specs: dict[str, str] | None = None):
    """An Evaluator from what :func:`evaluate_to` or :func:`evaluate_stream` was given (see there)."""
    from ..metrics.settings import MetricSettings

    if isinstance(given, MetricSettings):
        from ..metrics.stream import Evaluator, ModelPool

        return Evaluator(given, ModelPool(device, specs))
    return given() if callable(given) and not hasattr(given, "evaluate") else given


def resume_records(output: str, overwrite: bool, settings) -> dict[tuple, dict[str, Any]]:
    """Metric and error records already in ``output``, by (id, model, method, step); error if made with other settings."""
    if output == "-":
        return {}
    path = Path(output)
    if overwrite:
        truncate_for_overwrite(output)
    expected = settings.config()
    done = {}
    for record in completed_lines(path):
        # error records of undefined metrics carry the config too: made with other settings, they are stale as well
        if record.get("kind") == METRIC or (record.get("kind") == ERROR and isinstance(record.get("config"), dict)):
            config = {key: value for key, value in (record.get("config") or {}).items() if key != "heatmap"}
            if config != expected:
                raise BadInput(f"{output} holds metric records made with other settings; use `overwrite` or a new file")
        retry = record.get("kind") == ERROR and "line" in record  # a skipped malformed line: try it again
        if record.get("kind") in (METRIC, ERROR) and not retry and record.get("id") is not None and record.get("step") is not None:
            done[record_key(record)] = record
    return done


def _run(evaluator, heatmaps: str, output: str, done: dict, stop_on_error: bool, on_skip, on_record) -> RunSummary:
    summary = RunSummary()
    lines = ((line.number, line.data, line.error) for line in read_jsonl(heatmaps))
    with JsonlWriter(output) as writer, progress_bar("evaluating", count_lines(heatmaps)) as advance:
        for step in evaluate_records(lines, evaluator, done):
            if step.failure is not None:
                exc = step.failure
                message = str(exc) if exc.message.startswith("line ") else f"line {step.number}: {exc}"
                if stop_on_error or isinstance(exc, OtherHeatmaps):
                    raise GradellmError(message, exit_code=exc.exit_code) from None
                summary.skipped += 1
                summary.errors.append(GradellmError(message, exit_code=exc.exit_code))
                with paused():
                    if on_skip is not None:
                        on_skip(summary.errors[-1])
                    writer.write([_skipped(step.source, step.number, exc.message)])
                advance()
                continue
            if step.record is not None:
                summary.undefined += step.record["kind"] == ERROR
                summary.ran += 1
                with paused():  # a record on the terminal's stdout: the bar steps aside
                    writer.write([step.record])
                if on_record is not None:
                    on_record(step.record)
            if step.number:
                summary.resumed += step.resumed
                advance(ran=not step.resumed)
    return summary


def _one(evaluator, number: int, error: str | None, record: dict | None, done: dict, seen: set) -> dict | str | None:
    """The metric or error record of one input line; None when there is nothing to write for it,
    ``RESUMED`` when an earlier run wrote it."""
    if record is None:
        raise BadInput(error or f"line {number} cannot be read")
    if isinstance(record, dict) and record.get("kind") == ERROR:
        return None  # an input `gradellm explain` could not explain: nothing to measure
    check_heatmap(record)
    if not evaluator.wants(record):
        return None
    key = record_key(record)
    if key in seen:
        raise BadInput("appears twice in the input (same id, model, method and step)", record=key[0])
    seen.add(key)
    if key in done:
        _check_made_from(record, done[key])
        evaluator.note(record, done[key])
        return RESUMED
    return evaluator.evaluate(record)


def _check_made_from(heatmap: dict[str, Any], earlier: dict[str, Any]) -> None:
    """The metric (or error) record already in the output for this heatmap record must have been made
    from a heatmap with the same settings (the device and the gradellm release aside, as in reports)."""
    from ..reports.load import method_settings

    if isinstance(earlier.get("config"), dict) and method_settings(earlier) != method_settings(heatmap):
        raise OtherHeatmaps(
            "the `output` file holds metrics of heatmaps made with other options (the heatmap file was remade); "
            "use `overwrite` or a new file"
        )


def _skipped(record: dict | None, number: int, reason: str) -> dict[str, Any]:
    """The error record of a line that could not be evaluated."""
    record = record if isinstance(record, dict) else {}
    return error_record(record_id=record.get("id"), reason=reason, model=record.get("model"), method=record.get("method"),
                        step=record.get("step"), line=number)


def evaluate_stream(
    records: Iterable[dict[str, Any]],
    settings: MetricSettings | None = None,
    device: str = "auto",
    specs: dict[str, str] | None = None,
) -> Iterator[dict[str, Any]]:
    """Metric (or error) records for a stream of heatmap records, then the generation summaries.

    Error records from ``gradellm explain`` (kind "error") are passed over; anything else that is
    not a heatmap record raises :class:`BadInput`.
    """
    from ..metrics.settings import MetricSettings

    evaluator = _evaluator(settings or MetricSettings(), device, specs)
    for step in evaluate_records(((number, record, None) for number, record in enumerate(records, 1)), evaluator):
        if step.failure is not None:
            raise step.failure
        if step.record is not None:
            yield step.record


def evaluate_jsonl(
    path: str,
    settings: MetricSettings | None = None,
    device: str = "auto",
    specs: dict[str, str] | None = None,
) -> Iterator[dict[str, Any]]:
    """:func:`evaluate_stream` over a JSONL file of heatmap records (``-`` for stdin); a bad line raises BadInput."""
    def records() -> Iterator[dict[str, Any]]:
        for line in read_jsonl(path):
            if line.data is None:
                raise BadInput(line.error or f"line {line.number} cannot be read")
            yield line.data

    yield from evaluate_stream(records(), settings, device, specs)
