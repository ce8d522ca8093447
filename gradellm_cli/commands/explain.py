"""``gradellm explain``: heatmap records for one text or a JSONL file, resumable, one line per error."""

from __future__ import annotations

import sys
from functools import partial

import typer
from rich.console import Console

from ..errors import EXIT_SKIPPED, BadInput, GradellmError
from ..explain import Explainer, ExplainSettings
from ..pipelines import InputFields, count_inputs, dataset_inputs, explain_to, first_checked, jsonl_inputs, text_input
from ..settings import MethodOptions
from ..view import print_continuation, print_heatmap
from .options import (
    EXPLAIN_DEFAULTS,
    METHOD_DEFAULTS,
    Attention,
    AttentionLayers,
    Balanced,
    BaselineToken,
    BoolqContext,
    DataDir,
    Device,
    DigSteps,
    Dtype,
    GradAt,
    IgSteps,
    KvExpansion,
    Layers,
    MaxNewTokens,
    MethodBatchSize,
    Neighbours,
    Offset,
    Overwrite,
    ShuffleSeed,
    Similarity,
    Strategy,
    Target,
    TargetFn,
    Threads,
    Upscale,
    Variant,
    VzLayers,
    check_one_source,
    use_threads,
)

EXAMPLES = """
Examples:

  gradellm explain "a gorgeous, witty, seductive movie."

  gradellm explain --input ../shared/data/sst2.jsonl --output heatmaps.jsonl

  gradellm explain --dataset sst2 --limit 20 --method all --output heatmaps.jsonl

  gradellm explain "Why did the chicken cross the road?" --task generate --max-new-tokens 10 --method all

  gradellm explain "The capital of France is" --continuation " Paris, a city on the Seine."

  gradellm explain --input chats.jsonl --source-roles system,user --output heatmaps.jsonl

  gradellm explain "a gorgeous, witty, seductive movie." --contrast Negative
"""


def explain(
    text: str | None = typer.Argument(None, help="Text to explain. Omit it and use --input for a JSONL file."),
    input: str | None = typer.Option(None, "--input", "-i", help="JSONL file of records ('-' for stdin)."),
    dataset: str | None = typer.Option(
        None, "--dataset", "-d", help="Built-in data set (imdb, sst2, boolq, tellmewhy, wikibio) or a .jsonl/.json/.csv/.parquet file."
    ),
    data_dir: DataDir = None,
    limit: int | None = typer.Option(None, help="Records to take from --dataset."),
    offset: Offset = 0,
    shuffle_seed: ShuffleSeed = None,
    balanced: Balanced = False,
    boolq_context: BoolqContext = None,
    text_field: str = typer.Option("text", help="Record field holding the text."),
    id_field: str = typer.Option("id", help="Record field holding the id (the line number when absent)."),
    label_field: str = typer.Option("label", help="Record field holding the gold label (for --target gold)."),
    task: str | None = typer.Option(
        None, help="Prompt template: sentiment (default; generate with a continuation), boolq, generate or raw; a --dataset brings its own."
    ),
    continuation: str | None = typer.Option(
        None, "--continuation", "-c", help="Explain this given text, token by token, as the reply to TEXT (instead of generating one)."
    ),
    continuation_field: str = typer.Option("continuation", help="JSONL field holding a record's given continuation (optional)."),
    messages_field: str = typer.Option("messages", help="JSONL field holding a chat: a list of {role, content} messages."),
    source_roles: str = typer.Option("user", help="Chats: roles whose content is the source (comma-separated, or all)."),
    contrast: str | None = typer.Option(
        None, help="Explain target minus this token (one token; for a continuation also a text of as many tokens)."
    ),
    model: str = typer.Option("smollm2", "--model", "-m", help="Alias (smollm2, gemma3), .gguf file, model folder or hub id."),
    method: str = typer.Option("grad-ellm", help="Method name(s), comma-separated, or 'all' (see `gradellm methods`)."),
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
    output: str | None = typer.Option(None, "--output", "-o", help="JSONL file to append records to ('-' for stdout)."),
    seed: int = typer.Option(0, help="Seed for anything random (the random baseline)."),
    device: Device = "auto",
    threads: Threads = None,
    dtype: Dtype = "float32",
    show: bool | None = typer.Option(None, "--show/--no-show", help="Print coloured heatmaps (default: unless --output -)."),
    all_tokens: bool = typer.Option(False, "--all-tokens", help="Show template tokens in the heatmap too."),
    on_error: str = typer.Option("skip", help="A bad record: 'skip' reports it and goes on, 'stop' ends the run."),
    overwrite: Overwrite = False,
    trust_remote_code: bool = typer.Option(False, "--trust-remote-code", help="Allow model code from the hub (off by default)."),
) -> None:
    """Explain what the model looked at for each predicted or generated token.

    Writes one heatmap record per (input, method, step) to --output and prints coloured heatmaps.
    A rerun with the same --output resumes: inputs already written are skipped.
    """
    if layers is not None:  # its form, before anything heavy is imported
        from ..layers import LAYERS_FOR_SYNTAX, select_layers

        select_layers(layers, LAYERS_FOR_SYNTAX)
    from ..chat import parse_source_roles  # here, not above: `gradellm explain --help` loads no torch
    from ..methods import check_method_options, parse_methods
    from ..methods.grad_ellm import variant_options
    from ..prompts import get_task

    use_threads(threads)
    check_one_source(text, input, dataset)
    if on_error not in ("skip", "stop"):
        raise BadInput("--on-error takes skip or stop")
    roles = parse_source_roles(source_roles)
    _check_targets(text, continuation, contrast, task, max_new_tokens)
    loaded = None
    if dataset is not None:
        from ..data import load_records

        loaded = load_records(
            dataset, task=task, data_dir=data_dir, text_field=text_field, label_field=None if label_field == "label" else label_field,
            id_field=id_field, limit=limit, offset=offset, seed=shuffle_seed, balanced=balanced, boolq_context=boolq_context,
            continuation_field=continuation_field, messages_field=messages_field,
        )
    task = loaded.task if loaded is not None else task
    if task is not None:
        get_task(task)
    settings = ExplainSettings(
        task=task,
        target=target,
        max_new_tokens=max_new_tokens,
        methods=parse_methods(method),
        options=MethodOptions(
            attention=attention, ig_steps=ig_steps, target_fn=target_fn, seed=seed, batch_size=batch_size,
            vz_layers=vz_layers, attention_layers=attention_layers, dig_steps=dig_steps, neighbours=neighbours, strategy=strategy,
            upscale=upscale, baseline_token=baseline_token,
            **variant_options(variant, layers=layers, similarity=similarity, grad_at=grad_at, kv_expansion=kv_expansion),
        ),
        source_roles=roles,
        contrast=contrast,
    )
    check_method_options(settings.methods, settings.options)
    show = (output != "-") if show is None else show
    if text is not None:
        on_error = "stop"  # a single text has nothing to skip to
    if loaded is not None:
        inputs, total = dataset_inputs(loaded.records), len(loaded)
    elif text is not None:
        inputs, total = text_input(text, continuation), 1
    else:
        fields = InputFields(text_field, id_field, label_field, continuation_field, messages_field)
        inputs, total = jsonl_inputs(input, settings, fields), count_inputs(input)  # a missing file: an error before the model loads
    inputs = first_checked(inputs, on_error == "stop")  # a bad first record with --on-error stop fails before the model loads
    console = Console(stderr=output == "-")  # records on stdout: heatmaps (an explicit --show) go to stderr
    summary = explain_to(
        output, inputs, settings, lambda: Explainer(model, device=device, dtype=dtype, trust_remote_code=trust_remote_code),
        overwrite=overwrite, stop_on_error=on_error == "stop", total=total,
        on_records=partial(_show, console, all_tokens) if show else None,
        on_skip=_print_skip,
    )
    if summary.resumed:
        print(f"gradellm: {summary.resumed} input(s) already in {output} were not explained again (resumed)", file=sys.stderr)
    if summary.skipped:
        raise GradellmError(f"{summary.skipped} record(s) skipped (see the errors above)", exit_code=EXIT_SKIPPED)


def _show(console: Console, all_tokens: bool, records: list[dict]) -> None:
    for record in records:
        print_heatmap(console, record, all_tokens)
        print_continuation(console, record)  # a generation's reply, whole, after its last step


def _print_skip(exc: GradellmError) -> None:
    Console(stderr=True).print(f"gradellm: skipped: {exc}", markup=False, highlight=False, soft_wrap=True)  # one line, whatever the width


def _check_targets(text: str | None, continuation: str | None, contrast: str | None, task: str | None, max_new_tokens: int) -> None:
    """Checks of the target options that need no model, made before it loads."""
    from ..prompts import get_task

    if continuation is not None:
        if text is None:
            raise BadInput("--continuation goes with a TEXT argument; JSONL records carry theirs in --continuation-field")
        if not continuation.strip():
            raise BadInput("--continuation is empty")
        if task is not None and get_task(task).is_classification:
            raise BadInput(f"--continuation needs a generation task (generate or raw), not {task}")
    elif max_new_tokens < 1:
        raise BadInput("--max-new-tokens must be at least 1")
    if contrast is not None and not contrast.strip():
        raise BadInput("--contrast is empty")
