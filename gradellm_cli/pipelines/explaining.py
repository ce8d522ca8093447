"""``explain_to``: inputs -> heatmap records appended to a JSONL file, resumable, one writer at a time.

What ``gradellm explain`` runs, for Python users too: the output is locked before the model loads (a
second writer is refused at once), an output that already holds some of the records resumes (inputs
whose every method is there are not explained again; one cut short by a kill is cut from the file and
explained again, so no step is lost or doubled), and an output made with other settings is refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import BadInput, GradellmError
from ..jsonl import JsonlWriter, check_output, completed_lines, rewrite_jsonl
from ..locks import sole_writer, truncate_for_overwrite
from ..progress import paused, progress_bar
from ..schema import HEATMAP
from .inputs import ExplainInput

Pair = tuple[str, str]  # (record id, method)


@dataclass
class RunSummary:
    """What a pipeline did: inputs (or records) run, skipped as bad, and left alone because an earlier run did them."""

    ran: int = 0
    skipped: int = 0
    resumed: int = 0
    undefined: int = 0  # evaluate: records whose metrics are undefined (their error records say why)
    errors: list[GradellmError] = field(default_factory=list)


def explain_to(
    output: str | Path | None,
    inputs: Iterable[ExplainInput],
    settings,
    explainer,
    *,
    overwrite: bool = False,
    stop_on_error: bool = False,
    total: int | None = None,
    on_records: Callable[[list[dict[str, Any]]], None] | None = None,
    on_skip: Callable[[GradellmError], None] | None = None,
) -> RunSummary:
    """Explain ``inputs`` with every method of ``settings`` and append the heatmap records to ``output``.

    ``output``: a JSONL path, ``"-"`` for stdout, or None to write nothing (``on_records`` still gets
    every input's records). ``explainer``: an :class:`~gradellm_cli.explain.Explainer`, or a function
    that makes one, called once the output is locked (so a refused second writer loads no model).
    ``stop_on_error``: a bad input raises instead of being skipped (``on_skip`` hears of each skip).
    ``total``: the number of inputs, for the progress bar (stderr, on a terminal only).
    """
    check_output(str(output) if output is not None else None)
    output = None if output is None else str(output)
    with sole_writer(output):  # before the model loads: a second writer is refused at once
        explainer = explainer() if callable(explainer) and not hasattr(explainer, "prepare") else explainer
        done = resume_pairs(output, overwrite, explainer, settings)
        return _run(explainer, settings, inputs, output, done, stop_on_error, total, on_records, on_skip)


def resume_pairs(output: str | None, overwrite: bool, explainer, settings) -> set[Pair]:
    """(id, method) pairs already in ``output``; error if it holds records made with other settings.

    A pair is done when all its steps are there. An input's records go out in one write, but a write
    cut short by SIGKILL can still leave the first steps of a generation as whole lines: those are cut
    from the file (an atomic rewrite) and the pair is explained again, so no step is lost or doubled.
    """
    if output in (None, "-"):
        return set()
    path = Path(output)
    if overwrite:
        truncate_for_overwrite(output)
    records = completed_lines(path)
    steps: dict[Pair, set[int]] = {}
    wanted: dict[Pair, int] = {}
    for record in records:
        if record.get("kind") != HEATMAP:
            continue
        _check_same_settings(record, output, explainer, settings)
        pair = (str(record["id"]), record["method"])
        steps.setdefault(pair, set()).add(record.get("step", 0))
        wanted[pair] = record.get("steps") or 1
    cut_short = {pair for pair, seen in steps.items() if len(seen) < wanted[pair]}
    if cut_short:
        rewrite_jsonl(path, [r for r in records if r.get("kind") != HEATMAP or (str(r["id"]), r["method"]) not in cut_short])
    done = set(steps) - cut_short
    return done | {(_OLD_ROW_ID.sub(r"line-\1", record_id), method) for record_id, method in done if _OLD_ROW_ID.fullmatch(record_id)}


# Before 0.5.0, `--dataset FILE.jsonl` named a record without an id row-N (N counted over the records),
# where `--input` says line-N (N the line number): the same number in a file without blank lines, so
# an output written then resumes under today's ids instead of explaining those records again.
_OLD_ROW_ID = re.compile(r"row-(\d+)")


def _check_same_settings(record: dict[str, Any], output: str, explainer, settings) -> None:
    """Refuse an output whose records of this run's methods were made with another model or other settings."""
    from ..explain import GIVEN

    method = record.get("method")
    if method not in settings.methods:
        return
    source = record.get("target_source")
    task = settings.task_for(continuation=source == GIVEN, chat=record.get("task") == "chat")
    expected = explainer.method_config(settings, method, task, source)
    if record.get("model") != explainer.model_name or expected != record.get("config"):
        if record.get("model") != explainer.model_name:
            differs = f"model is {record.get('model')!r} there, {explainer.model_name!r} now"
        else:
            differs = _first_difference(expected, record.get("config"))
        raise BadInput(f"{output} holds {method} records made with other settings ({differs}); use `overwrite` or a new file")


def _first_difference(expected: dict[str, Any], found: Any) -> str:
    """The first setting in which the records differ from this run, as ``name is A there, B now``."""
    found = found if isinstance(found, dict) else {}
    for key in sorted(set(expected) | set(found)):
        if expected.get(key) != found.get(key):
            return f"{key} is {found.get(key)!r} there, {expected.get(key)!r} now"
    return "another configuration"


def _run(explainer, settings, inputs, output, done, stop_on_error, total, on_records, on_skip) -> RunSummary:
    summary = RunSummary()
    seen: set[str] = set()
    with JsonlWriter(output) as writer, progress_bar("explaining", total) as advance:
        for item in inputs:
            try:
                records = explain_input(explainer, settings, item, done, seen)
            except GradellmError as exc:
                if stop_on_error:
                    raise
                summary.skipped += 1
                summary.errors.append(exc)
                if on_skip is not None:
                    with paused():
                        on_skip(exc)
                advance()
                continue
            with paused():  # results on the terminal's stdout: the bar steps aside (a no-op in a pipe)
                writer.write(records)
                if on_records is not None and records:
                    on_records(records)
            advance(ran=bool(records))  # no records: every method was done by an earlier run
            summary.ran += bool(records)
            summary.resumed += not records
    return summary


def explain_input(explainer, settings, item: ExplainInput, done: set[Pair], seen: set[str]) -> list[dict[str, Any]]:
    """The heatmap records of one input, for the methods not yet ``done`` for it."""
    if item.error:
        raise BadInput(item.error, record=item.record_id)
    if item.record_id in seen:
        raise BadInput("duplicate id in the input", record=item.record_id)
    seen.add(item.record_id)
    todo = [name for name in settings.methods if (item.record_id, name) not in done]
    if not todo:
        return []
    prepared = explainer.prepare(item.record_id, item.values, settings, item.label, continuation=item.continuation, messages=item.messages)
    records = []
    for name in todo:
        records.extend(explainer.run_method(prepared, name, settings))
    return records
