"""``gradellm explain``: heatmap records for one text or a JSONL file, resumable, one line per error."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from ..chat import check_chat, parse_source_roles
from ..errors import BadInput, GradellmError
from ..explain import GIVEN, Explainer, ExplainSettings
from ..jsonl import JsonlWriter, check_input, check_output, completed_lines, count_lines, read_jsonl, rewrite_jsonl
from ..locks import sole_writer, truncate_for_overwrite
from ..methods import MethodOptions, check_method_options, parse_methods
from ..methods.grad_ellm import variant_options
from ..progress import paused, progress_bar
from ..prompts import get_task
from ..view import print_heatmap
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


@dataclass
class InputRecord:
    record_id: str
    values: dict[str, str] | None
    label: str | None
    error: str | None = None
    continuation: str | None = None
    messages: list[dict[str, Any]] | None = None


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
    use_threads(threads)
    if sum(source is not None for source in (text, input, dataset)) != 1:
        raise BadInput("give one of a TEXT argument, --input FILE or --dataset NAME")
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
        inputs, total = (_from_loaded(r) for r in loaded), len(loaded)
    elif text is not None:
        inputs, total = _from_text(text, continuation), 1
    else:
        check_input(input)  # a missing file is an error before the model loads
        fields = JsonlFields(text_field, id_field, label_field, continuation_field, messages_field)
        inputs, total = _from_jsonl(input, settings, fields), count_lines(input)
    inputs = _first_checked(inputs, on_error)  # a bad first record with --on-error stop fails before the model loads
    check_output(output)
    with sole_writer(output):  # before the model loads: a second writer is refused at once
        explainer = Explainer(model, device=device, dtype=dtype, trust_remote_code=trust_remote_code)
        done = _resume(output, overwrite, explainer, settings)
        failures = _run(explainer, settings, inputs, output, done, show, all_tokens, on_error, total=total)
    if failures:
        raise GradellmError(f"{failures} record(s) skipped (see the errors above)", exit_code=5)


def _first_checked(inputs: Iterator[InputRecord], on_error: str) -> Iterator[InputRecord]:
    """The inputs, the first one read now: with ``stop``, a first record that is bad as read ends the run
    before the model loads."""
    inputs = iter(inputs)
    first = next(inputs, None)
    if first is not None and first.error and on_error == "stop":
        raise BadInput(first.error, record=first.record_id)
    return inputs if first is None else itertools.chain([first], inputs)


def _check_targets(text: str | None, continuation: str | None, contrast: str | None, task: str | None, max_new_tokens: int) -> None:
    """Checks of the target options that need no model, made before it loads."""
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


@dataclass(frozen=True)
class JsonlFields:
    """Which field of a JSONL record holds what."""

    text: str
    id: str
    label: str
    continuation: str
    messages: str


def _from_text(text: str, continuation: str | None = None) -> Iterator[InputRecord]:
    yield InputRecord("text-1", {"text": text}, None, continuation=continuation)


def _from_loaded(record: dict[str, Any]) -> InputRecord:
    """A record of :func:`gradellm_cli.data.load_records` (a --dataset)."""
    return InputRecord(
        record["id"], record["values"], record["label"], continuation=record.get("continuation"), messages=record.get("messages")
    )


def _from_jsonl(path: str, settings: ExplainSettings, fields: JsonlFields) -> Iterator[InputRecord]:
    for line in read_jsonl(path):
        if line.data is None:
            yield InputRecord(f"line-{line.number}", None, None, line.error)
            continue
        yield _jsonl_record(line.data, line.number, settings, fields)


def _jsonl_record(data: dict[str, Any], number: int, settings: ExplainSettings, fields: JsonlFields) -> InputRecord:
    """One JSONL record as an input: a chat (a messages field) or the task's fields, with any continuation."""
    record_id = str(data.get(fields.id, f"line-{number}"))
    continuation = data.get(fields.continuation)
    if continuation is not None and not isinstance(continuation, str):
        return InputRecord(record_id, None, None, f"line {number}: the field {fields.continuation!r} is not text")
    if continuation is not None and not continuation:
        return InputRecord(record_id, None, None, f"line {number}: the continuation is empty")
    if fields.messages in data:
        try:  # what needs no model is checked as the record is read
            check_chat(data[fields.messages], settings.source_roles)
        except BadInput as exc:
            return InputRecord(record_id, None, None, f"line {number}: {exc.message}")
        return InputRecord(record_id, None, None, continuation=continuation, messages=data[fields.messages])
    task = get_task(settings.task_for(continuation=continuation is not None))
    values = {name: data.get(fields.text if name == "text" else name) for name in task.fields}
    missing = [name for name, value in values.items() if not isinstance(value, str)]
    if missing:
        wanted = fields.text if missing[0] == "text" else missing[0]
        return InputRecord(record_id, None, None, f"line {number} has no text field {wanted!r}")
    label = data.get(fields.label)
    return InputRecord(record_id, values, None if label is None else str(label), continuation=continuation)


def _resume(output: str | None, overwrite: bool, explainer: Explainer, settings: ExplainSettings) -> set[tuple[str, str]]:
    """(id, method) pairs already in --output; error if it holds records made with other settings.

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
    steps: dict[tuple[str, str], set[int]] = {}
    wanted: dict[tuple[str, str], int] = {}
    for record in records:
        if record.get("kind") != "heatmap":
            continue
        method = record.get("method")
        expected = None
        if method in settings.methods:  # the config this run would give this record, for a task this run could have
            source = record.get("target_source")
            task = settings.task_for(continuation=source == GIVEN, chat=record.get("task") == "chat")
            expected = explainer.method_config(settings, method, task, source)
        same = record.get("model") == explainer.model_name and expected == record.get("config")
        if not same and expected is not None:
            raise BadInput(
                f"{output} holds {record.get('method')} records made with another model or options; use --overwrite or a new file"
            )
        pair = (str(record["id"]), record["method"])
        steps.setdefault(pair, set()).add(record.get("step", 0))
        wanted[pair] = record.get("steps") or 1
    cut_short = {pair for pair, seen in steps.items() if len(seen) < wanted[pair]}
    if cut_short:
        rewrite_jsonl(path, [r for r in records if r.get("kind") != "heatmap" or (str(r["id"]), r["method"]) not in cut_short])
    return set(steps) - cut_short


def _run(explainer, settings, inputs, output, done, show, all_tokens, on_error, total) -> int:
    console = Console(stderr=output == "-")  # records on stdout: heatmaps (an explicit --show) go to stderr
    errors = Console(stderr=True)
    failures = resumed = 0
    seen: set[str] = set()
    with JsonlWriter(output) as writer, progress_bar("explaining", total) as advance:
        for item in inputs:
            try:
                records = _explain_one(explainer, settings, item, done, seen)
            except GradellmError as exc:
                if on_error == "stop":
                    raise
                failures += 1
                with paused(sys.stderr):
                    errors.print(f"gradellm: skipped: {exc}", markup=False, highlight=False, soft_wrap=True)  # one line, whatever the width
                advance()
                continue
            with paused():  # results on the terminal's stdout: the bar steps aside (a no-op in a pipe)
                writer.write(records)
                if show:
                    for record in records:
                        print_heatmap(console, record, all_tokens)
            advance(ran=bool(records))  # no records: every method was done by an earlier run
            resumed += not records
    if resumed:
        print(f"gradellm: {resumed} input(s) already in {output} were not explained again (resumed)", file=sys.stderr)
    return failures


def _explain_one(explainer, settings, item: InputRecord, done, seen) -> list[dict[str, Any]]:
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

