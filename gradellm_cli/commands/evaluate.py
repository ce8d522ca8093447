"""``gradellm evaluate``: faithfulness metrics for heatmap records, resumable, one line per error."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from ..errors import EXIT_SKIPPED, BadInput, GradellmError
from ..jsonl import JsonlWriter, check_input, check_output, completed_lines, count_lines, read_jsonl
from ..locks import sole_writer, truncate_for_overwrite
from ..metrics import Evaluator, MetricSettings, ModelPool, parse_metrics, parse_pi_grid, record_key
from ..metrics.records import check_heatmap
from ..progress import paused, progress_bar
from ..records import ERROR, METRIC, SCHEMA_VERSION
from .options import (
    METRIC_DEFAULTS,
    PI_GRID_DEFAULT,
    Device,
    GenStride,
    MaskUnit,
    Metrics,
    Overwrite,
    PiGrid,
    Samples,
    Threads,
    TopK,
    use_threads,
)

EXAMPLES = """
Examples:

  gradellm evaluate --heatmaps heatmaps.jsonl --output metrics.jsonl --metrics pi --pi-grid 0.1:0.9:0.1

  gradellm evaluate --heatmaps heatmaps.jsonl --metrics soft,deletion-insertion --output -
"""


def evaluate(
    heatmaps: str = typer.Option("-", "--heatmaps", "-i", help="JSONL file of heatmap records from `gradellm explain` ('-' for stdin)."),
    output: str = typer.Option("-", "--output", "-o", help="JSONL file to append metric records to ('-' for stdout)."),
    metrics: Metrics = "all",
    pi_grid: PiGrid = PI_GRID_DEFAULT,
    samples: Samples = METRIC_DEFAULTS.samples,
    seed: int = typer.Option(0, help="Seed of the soft perturbations (with the record id, model and step)."),
    mask_unit: MaskUnit = METRIC_DEFAULTS.mask_unit,
    batch_size: int = typer.Option(METRIC_DEFAULTS.batch_size, help="Perturbed inputs per forward pass."),
    gen_stride: GenStride = METRIC_DEFAULTS.gen_stride,
    topk: TopK = METRIC_DEFAULTS.topk,
    baseline_token: str | None = typer.Option(
        None, help="Log-odds: the token put in place of the top-k (default: the model's mask token, else unk, pad or eos)."
    ),
    device: Device = "auto",
    threads: Threads = None,
    model: list[str] | None = typer.Option(
        None, "--model", "-m", help="Where to load a model whose records name it by file or folder name (.gguf file or folder); repeatable."
    ),
    on_error: str = typer.Option("skip", help="A malformed record: 'skip' writes an error record and goes on, 'stop' ends the run."),
    overwrite: Overwrite = False,
) -> None:
    """Measure how faithful heatmaps are: Soft-NS/NC, pi-Soft-NS/NC curves and AUC, Deletion/Insertion.

    Writes one metric record per heatmap record (generation: per evaluated step, plus one
    sequence-level record with step -1 averaging them). Metrics that are undefined for a record
    (all-zero scores, zeroing the text changes nothing) give an error record saying why.
    A rerun with the same --output resumes: records already evaluated there are skipped.

    Example: gradellm explain --input data.jsonl --method all --output - | gradellm evaluate --heatmaps - --output metrics.jsonl
    """
    use_threads(threads)
    if on_error not in ("skip", "stop"):
        raise BadInput("--on-error takes skip or stop")
    settings = MetricSettings(
        metrics=parse_metrics(metrics),
        pi_grid=parse_pi_grid(pi_grid),
        samples=samples,
        seed=seed,
        mask_unit=mask_unit,
        batch_size=batch_size,
        gen_stride=gen_stride,
        topk=topk,
        baseline_token=baseline_token,
    )
    _evaluate(heatmaps, output, settings, device, model, on_error, overwrite)


def _evaluate(heatmaps: str, output: str, settings: MetricSettings, device: str, model: list[str] | None, on_error: str,
              overwrite: bool) -> None:
    if heatmaps == "-" and sys.stdin.isatty():
        raise BadInput("no heatmap records on stdin: pass --heatmaps FILE, or pipe `gradellm explain ... --output -` into this")
    check_input(heatmaps)
    check_output(output)
    with sole_writer(output):
        done = _resume(output, overwrite, settings)
        evaluator = Evaluator(settings, ModelPool(device, _model_specs(model or [])))
        failures, undefined = _run(evaluator, heatmaps, output, done, on_error)
    if undefined:
        print(f"gradellm: {undefined} record(s) have undefined metrics; their error records say why", file=sys.stderr)
    if failures:
        raise GradellmError(f"{failures} record(s) skipped (see the errors above)", exit_code=EXIT_SKIPPED)


def _model_specs(values: list[str]) -> dict[str, str]:
    """--model values -> {name records use: what to load}."""
    from ..models import resolve_model

    return {resolve_model(value).name: value for value in values}


def _resume(output: str, overwrite: bool, settings: MetricSettings) -> dict[tuple, dict[str, Any]]:
    """Metric and error records already in --output, by (id, model, method, step); error if made with other settings."""
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
                raise BadInput(f"{output} holds metric records made with other settings; use --overwrite or a new file")
        retry = record.get("kind") == ERROR and "line" in record  # a skipped malformed line: try it again
        if record.get("kind") in (METRIC, ERROR) and not retry and record.get("id") is not None and record.get("step") is not None:
            done[record_key(record)] = record
    return done


def _run(evaluator: Evaluator, heatmaps: str, output: str, done: dict, on_error: str) -> tuple[int, int]:
    failures = undefined = 0
    seen: set[tuple] = set()
    lines = read_jsonl(heatmaps)
    with JsonlWriter(output) as writer, progress_bar("evaluating", count_lines(heatmaps)) as advance:
        for line in lines:
            record = line.data
            try:
                result = _one(evaluator, line.number, line.error, record, done, seen)
            except GradellmError as exc:
                message = str(exc) if exc.message.startswith("line ") else f"line {line.number}: {exc}"
                if on_error == "stop" or isinstance(exc, OtherHeatmaps):
                    raise GradellmError(message, exit_code=exc.exit_code) from None
                failures += 1
                print(f"gradellm: skipped: {message}", file=sys.stderr)
                with paused():
                    writer.write([_skipped(record, line.number, exc.message)])
                advance()
                continue
            if isinstance(result, dict):
                undefined += result["kind"] == ERROR
                with paused():  # a record on the terminal's stdout: the bar steps aside
                    writer.write([result])
            advance(ran=result is not RESUMED)
        with paused():
            writer.write(evaluator.finish(done))
    return failures, undefined


RESUMED = "resumed"  # what _one returns for a record an earlier run evaluated (the progress bar's rate leaves it out)


def _one(evaluator: Evaluator, number: int, error: str | None, record: dict | None, done: dict, seen: set) -> dict | str | None:
    """The metric or error record of one input line; None when there is nothing to write for it,
    ``RESUMED`` when an earlier run wrote it."""
    if record is None:
        raise BadInput(error or f"line {number} cannot be read")
    if record.get("kind") == ERROR:
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


class OtherHeatmaps(BadInput):
    """--output holds metrics of heatmaps other than these: the heatmap file was remade since (other
    options), so resuming would keep numbers that do not belong to it. Stops the run even with
    ``--on-error skip``: every later line would be wrong in the same way."""


def _check_made_from(heatmap: dict[str, Any], earlier: dict[str, Any]) -> None:
    """The metric (or error) record already in --output for this heatmap record must have been made
    from a heatmap with the same settings (the device and the gradellm release aside, as in reports)."""
    from ..reports.load import method_settings

    if isinstance(earlier.get("config"), dict) and method_settings(earlier) != method_settings(heatmap):
        raise OtherHeatmaps(
            "the --output file holds metrics of heatmaps made with other options (the heatmap file was remade); "
            "use --overwrite or a new file"
        )


def _skipped(record: dict | None, number: int, reason: str) -> dict[str, Any]:
    """The error record of a line that could not be evaluated."""
    record = record if isinstance(record, dict) else {}
    fields = {name: record.get(name) for name in ("id", "model", "method", "step")}
    return {"schema_version": SCHEMA_VERSION, "kind": ERROR, **fields, "line": number, "error": reason}
