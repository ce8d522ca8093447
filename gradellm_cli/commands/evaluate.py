"""``gradellm evaluate``: faithfulness metrics for heatmap records, resumable, one line per error."""

from __future__ import annotations

import sys

import typer

from ..errors import EXIT_SKIPPED, BadInput, GradellmError
from ..metrics.settings import MetricSettings, parse_metrics, parse_pi_grid
from ..pipelines import evaluate_to
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
    written: list[dict] = []
    on_terminal = output == "-" and sys.stdout.isatty()  # raw JSON on a screen: a table of the main numbers follows it
    summary = evaluate_to(
        output, heatmaps, settings, device=device, specs=_model_specs(model or []),
        overwrite=overwrite, stop_on_error=on_error == "stop", on_skip=lambda exc: print(f"gradellm: skipped: {exc}", file=sys.stderr),
        on_record=written.append if on_terminal else None,
    )
    if written:
        print_summary(written)
    if summary.undefined:
        print(f"gradellm: {summary.undefined} record(s) have undefined metrics; their error records say why", file=sys.stderr)
    if summary.skipped:
        raise GradellmError(f"{summary.skipped} record(s) skipped (see the errors above)", exit_code=EXIT_SKIPPED)


SUMMARY_COLUMNS = (("soft_ns", "Soft-NS"), ("soft_nc", "Soft-NC"), ("auc_pi_soft_ns", "AUC pi-NS"), ("auc_pi_soft_nc", "AUC pi-NC"),
                   ("deletion_auc", "Deletion"), ("insertion_auc", "Insertion"), ("log_odds", "Log-odds"),
                   ("comprehensiveness", "Compr."), ("sufficiency", "Suff."))


def print_summary(records: list[dict]) -> None:
    """The metric records just printed as JSON, as a table on the terminal: one row per record (a
    generation's steps and its sequence record, step -1), the main metrics as columns."""
    from rich.console import Console
    from rich.table import Table

    columns = [(key, label) for key, label in SUMMARY_COLUMNS if any(key in record for record in records)]
    table = Table("id", "method", "step", *[label for _, label in columns], title="metrics (higher is better, Insertion lower)",
                  title_justify="left")
    for record in records:
        values = [f"{record[key]:.3f}" if isinstance(record.get(key), (int, float)) else "" for key, _ in columns]
        if record.get("kind") != "metric":
            values = [f"undefined: {record.get('error', '')}"[:60], *[""] * (len(columns) - 1)] if columns else []
        table.add_row(str(record.get("id")), str(record.get("method")), str(record.get("step")), *values)
    Console(stderr=True).print(table)


def _model_specs(values: list[str]) -> dict[str, str]:
    """--model values -> {name records use: what to load}."""
    from ..models import resolve_model

    return {resolve_model(value).name: value for value in values}
