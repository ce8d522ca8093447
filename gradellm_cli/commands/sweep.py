"""``gradellm sweep``: paper-style experiments in one command, resumable and shardable (see :mod:`gradellm_cli.sweep`)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import typer

from ..errors import EXIT_SKIPPED, GradellmError
from ..metrics.settings import parse_metrics, parse_pi_grid
from .options import (
    EXPLAIN_DEFAULTS,
    METHOD_DEFAULTS,
    METRIC_DEFAULTS,
    PI_GRID_DEFAULT,
    Attention,
    AttentionLayers,
    Balanced,
    BaselineToken,
    BoolqContext,
    DataDir,
    DigSteps,
    Dtype,
    GenStride,
    GradAt,
    IgSteps,
    KvExpansion,
    Layers,
    MaskUnit,
    MaxNewTokens,
    MethodBatchSize,
    Metrics,
    Neighbours,
    Offset,
    PiGrid,
    Samples,
    ShuffleSeed,
    Similarity,
    Strategy,
    SweepDevice,
    Target,
    TargetFn,
    Threads,
    TopK,
    Upscale,
    Variant,
    VzLayers,
    use_threads,
)

EXAMPLES = """
Examples:

  gradellm sweep --models smollm2,gemma3 --datasets sst2,imdb,boolq,tellmewhy,wikibio --methods all \\
      --limit 20 --limit-generation 10 --balanced --boolq-context evidence --output-dir runs/paper

  gradellm sweep --models smollm2 --datasets sst2 --methods grad-ellm,random --limit 3 --metrics soft --output-dir runs/tiny

  gradellm sweep ... --shard 0/4        (one of four batch jobs writing into the same --output-dir)

  accelerate launch --num_processes 2 -m gradellm_cli sweep ... (each process takes its share by RANK/WORLD_SIZE)

Rerun the same command to resume; a killed run (even SIGKILL) resumes to exactly the records of an uninterrupted one.
"""


def sweep(
    output_dir: str = typer.Option(
        ..., "--output-dir", "-o", help="Run folder: manifest.json, heatmaps*.jsonl, metrics*.jsonl, done*.jsonl."
    ),
    models: str = typer.Option(
        "smollm2", "--models", "-m", help="Models, comma-separated: aliases (smollm2, gemma3), .gguf files, folders."
    ),
    datasets: str = typer.Option(..., "--datasets", "-d", help="Built-in data sets (imdb, sst2, boolq, tellmewhy, wikibio) or files."),
    methods: str = typer.Option("all", help="Method names, comma-separated, or 'all' (see `gradellm methods`)."),
    limit: str | None = typer.Option(None, help="Records per dataset: N for all, and/or DATASET=N, e.g. 20,tellmewhy=10 (default: all)."),
    limit_generation: int | None = typer.Option(None, help="Records per generation dataset (tellmewhy, wikibio) without a DATASET=N."),
    offset: Offset = 0,
    shuffle_seed: ShuffleSeed = None,
    balanced: Balanced = False,
    boolq_context: BoolqContext = None,
    data_dir: DataDir = None,
    text_field: str = typer.Option("text", help="Text field of dataset files."),
    label_field: str | None = typer.Option(None, help="Label field of dataset files (default: label, when present)."),
    id_field: str = typer.Option("id", help="Id field of dataset files (row-N when absent)."),
    continuation_field: str = typer.Option("continuation", help="Field of dataset files holding a given reply to explain token by token."),
    messages_field: str = typer.Option("messages", help="Field of dataset files holding a chat (a list of {role, content})."),
    source_roles: str = typer.Option("user", help="Chats: roles whose content is the source (comma-separated, or all)."),
    target: Target = EXPLAIN_DEFAULTS.target,
    max_new_tokens: MaxNewTokens = EXPLAIN_DEFAULTS.max_new_tokens,
    variant: Variant = "paper",
    layers: Layers = None,
    similarity: Similarity = None,
    grad_at: GradAt = None,
    kv_expansion: KvExpansion = None,
    attention: Attention = METHOD_DEFAULTS.attention,
    ig_steps: IgSteps = METHOD_DEFAULTS.ig_steps,
    target_fn: TargetFn = METHOD_DEFAULTS.target_fn,
    batch_size: MethodBatchSize = METHOD_DEFAULTS.batch_size,
    vz_layers: VzLayers = METHOD_DEFAULTS.vz_layers,
    attention_layers: AttentionLayers = METHOD_DEFAULTS.attention_layers,
    dig_steps: DigSteps = METHOD_DEFAULTS.dig_steps,
    neighbours: Neighbours = METHOD_DEFAULTS.neighbours,
    strategy: Strategy = METHOD_DEFAULTS.strategy,
    upscale: Upscale = METHOD_DEFAULTS.upscale,
    baseline_token: BaselineToken = METHOD_DEFAULTS.baseline_token,
    metrics: Metrics = "all",
    pi_grid: PiGrid = PI_GRID_DEFAULT,
    samples: Samples = METRIC_DEFAULTS.samples,
    mask_unit: MaskUnit = METRIC_DEFAULTS.mask_unit,
    metric_batch_size: int = typer.Option(METRIC_DEFAULTS.batch_size, help="Perturbed inputs per forward pass when evaluating."),
    gen_stride: GenStride = METRIC_DEFAULTS.gen_stride,
    topk: TopK = METRIC_DEFAULTS.topk,
    seed: int = typer.Option(0, help="Seed of the random baseline and the soft perturbations."),
    device: SweepDevice = "auto",
    threads: Threads = None,
    dtype: Dtype = "float32",
    shard: str | None = typer.Option(
        None, help="Run share i of n (i/n, e.g. 0/2); default: RANK/WORLD_SIZE from the environment, else 0/1."
    ),
    report: bool = typer.Option(
        True, "--report/--no-report", help="At the end, print the tables of render --table and write them into the run folder."
    ),
) -> None:
    """Explain then evaluate every (model, dataset, method, record) unit, streaming records into --output-dir.

    Each model and dataset is loaded once; each record is prepared once per model and every method runs
    on it. A rerun with the same options resumes; with other options into the same folder it is refused.
    """
    from ..chat import parse_source_roles
    from ..methods.grad_ellm import variant_options
    from ..sweep.plan import SweepOptions, dataset_task, parse_limits, split_list
    from ..sweep.run import sweep_to
    from ..sweep.sharding import parse_shard

    use_threads(threads)  # not in the manifest: threads change float rounding at most, and a resume may use others
    started = time.perf_counter()
    the_shard = parse_shard(shard)
    names = split_list(datasets, "datasets")
    options = SweepOptions.from_flat(
        models=split_list(models, "models"),
        datasets=names,
        methods=split_list(methods, "methods"),
        limits=parse_limits(
            limit, limit_generation, names, {name: dataset_task(name, continuation_field, messages_field) for name in names}
        ),
        offset=offset,
        shuffle_seed=shuffle_seed,
        balanced=balanced,
        boolq_context=boolq_context,
        data_dir=data_dir,
        text_field=text_field,
        label_field=label_field,
        id_field=id_field,
        continuation_field=continuation_field,
        messages_field=messages_field,
        source_roles=parse_source_roles(source_roles),
        target=target,
        max_new_tokens=max_new_tokens,
        **variant_options(variant, layers=layers, similarity=similarity, grad_at=grad_at, kv_expansion=kv_expansion),
        attention=attention,
        ig_steps=ig_steps,
        target_fn=target_fn,
        batch_size=batch_size,
        vz_layers=vz_layers,
        attention_layers=attention_layers,
        dig_steps=dig_steps,
        neighbours=neighbours,
        strategy=strategy,
        upscale=upscale,
        baseline_token=baseline_token,
        seed=seed,
        dtype=dtype,
        device=device,
        metrics=parse_metrics(metrics),
        pi_grid=parse_pi_grid(pi_grid),
        samples=samples,
        mask_unit=mask_unit,
        metric_batch_size=metric_batch_size,
        gen_stride=gen_stride,
        topk=topk,
    )
    outcome = sweep_to(output_dir, options, the_shard)
    run_dir = Path(output_dir)
    where = f" (shard {the_shard})" if the_shard.count > 1 else ""
    print(
        f"gradellm: sweep{where}: {outcome.ran} unit(s) run, {outcome.skipped} already done, {outcome.failed} failed; "
        f"{time.perf_counter() - started:.0f} s; records in {run_dir}",
        file=sys.stderr,
    )
    if report and the_shard.count == 1:
        _report(run_dir)
    elif report:  # the other shards may still be running: their records are not all there yet
        print(f"gradellm: tables: `gradellm render --table {run_dir} --table-out {run_dir}` once every shard is done", file=sys.stderr)
    if outcome.failed:
        raise GradellmError(f"{outcome.failed} unit(s) could not be explained (their error records say why)", exit_code=EXIT_SKIPPED)


def _report(run_dir: Path) -> None:
    """The run's tables (sharded runs: `gradellm render --table RUN_DIR` once every shard is done)."""
    from rich.console import Console

    from ..reports import write_reports

    try:
        written = write_reports(run_dir, console=Console())
    except GradellmError as exc:
        print(f"gradellm: no report: {exc}", file=sys.stderr)
        return
    print(f"gradellm: wrote {', '.join(str(path) for path in written)}", file=sys.stderr)
