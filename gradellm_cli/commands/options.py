"""Command-line options that several commands share, declared once (Typer's ``Annotated`` form).

``explain`` and ``sweep`` share the data-selection and method options, ``evaluate`` and ``sweep`` the
metric options. Declaring each once keeps their flags and help texts from drifting apart. Where a
settings object holds the default (:class:`ExplainSettings`, :class:`MethodOptions`,
:class:`MetricSettings`), the commands take it from there (``EXPLAIN_DEFAULTS`` and friends); the
others (``--device auto``, ``--dtype float32``, ``--metrics all``, ``--seed 0``) are plain literals.

Nothing here imports torch: ``gradellm explain --help`` reads these without it. ``METRIC_DEFAULTS``
comes from the metrics package, which does, so it is made on first use (by ``evaluate`` and ``sweep``).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ..errors import BadInput
from ..settings import ExplainSettings, MethodOptions

EXPLAIN_DEFAULTS = ExplainSettings()
METHOD_DEFAULTS = MethodOptions()
PI_GRID_DEFAULT = "0.05:0.95:0.05"  # the method notes' grid, as --pi-grid spells it (MetricSettings.pi_grid)

# Data selection (explain --dataset, sweep --datasets).
DataDir = Annotated[
    str | None, typer.Option(help="Folder of the built-in data files (default: $GRADELLM_DATA, shared/data, hub).")
]
Offset = Annotated[int, typer.Option(help="Records of each dataset to skip first.")]
ShuffleSeed = Annotated[
    int | None, typer.Option(help="Shuffle each dataset with this seed before --offset/--limit (default: file order).")
]
Balanced = Annotated[bool, typer.Option("--balanced", help="Equal numbers of records per label (classification datasets).")]
BoolqContext = Annotated[
    str | None, typer.Option(help="BoolQ passage slot: evidence (default where present) or passage (full document).")
]

# Explaining.
Target = Annotated[str, typer.Option(help="Classification target: predicted, gold, or a word.")]
MaxNewTokens = Annotated[int, typer.Option(help="Tokens to generate and explain for generation tasks.")]
Layers = Annotated[str | None, typer.Option(help="Grad-ELLM layers: all, last:N, or a list like 0,5,-1 (default: the --variant's).")]
Variant = Annotated[
    str, typer.Option(help="Grad-ELLM preset: paper (the paper's text) or port (the authors' code: raw-cosine, post-o, tiled, last:1).")
]
Similarity = Annotated[
    str | None, typer.Option(help="Grad-ELLM token weights: rope-qk (q.k per head) or raw-cosine (default: --variant's).")
]
GradAt = Annotated[str | None, typer.Option(help="Grad-ELLM gradient before o_proj (pre-o) or after it (post-o) (default: --variant's).")]
KvExpansion = Annotated[
    str | None, typer.Option(help="Grad-ELLM grouped keys/values: grouped (as the model) or tiled (default: --variant's).")
]
Attention = Annotated[str, typer.Option(help="Grad-ELLM token weights: loosened (min-max) or softmax.")]
IgSteps = Annotated[int, typer.Option(help="Integrated-gradients steps.")]
VzLayers = Annotated[str, typer.Option(help="value-zeroing: mean of every layer's normalised row (all) or the last layer's (last).")]
AttentionLayers = Annotated[str, typer.Option(help="attention baseline: the last layer's weights (last) or the mean over layers (all).")]
DigSteps = Annotated[int, typer.Option(help="udig/dig: anchors per path (m); the path has m + 2 points before --upscale.")]
Neighbours = Annotated[int, typer.Option(help="udig/dig: nearest vocabulary words considered for each anchor (k).")]
Strategy = Annotated[str, typer.Option(help="udig/dig anchor choice: greedy (closest to its monotone version) or maxcount.")]
Upscale = Annotated[int, typer.Option(help="udig/dig: insert a midpoint between path points this many times (0-4).")]
BaselineToken = Annotated[
    str | None, typer.Option(help="udig/dig baseline token (default: the model's mask token, else unk, pad or eos).")
]
TargetFn = Annotated[str, typer.Option(help="Gradient baselines explain the target's probability or logit.")]
MethodBatchSize = Annotated[int, typer.Option(help="Batch size of methods that run many passes.")]
Threads = Annotated[
    int | None,
    typer.Option(help="CPU threads for torch (default: torch's own, one per core); 1 when other work shares the cores."),
]


def use_threads(threads: int | None) -> None:
    """Apply ``--threads`` (checked first: a bad value is refused before anything loads)."""
    if threads is None:
        return
    if threads < 1:
        raise BadInput("--threads must be at least 1")
    import torch

    torch.set_num_threads(threads)


Dtype = Annotated[str, typer.Option(help="float32, bfloat16 or float16.")]
Device = Annotated[str, typer.Option(help="cpu, cuda, cuda:N, auto (a GPU if there is one), or map:auto (spread over GPUs and CPU).")]
SweepDevice = Annotated[
    str,
    typer.Option(help="cpu, cuda, cuda:N, auto (a GPU if there is one; under accelerate: its own), map:auto (over GPUs and CPU)."),
]

# Evaluating.
Metrics = Annotated[
    str, typer.Option(help="soft, pi, deletion-insertion, log-odds, comprehensiveness, sufficiency, wae (comma-separated), or all.")
]
TopK = Annotated[float, typer.Option(help="Log-odds, comprehensiveness, sufficiency: the share of source tokens perturbed (top-k).")]
PiGrid = Annotated[str, typer.Option(help="Retaining probabilities pi: start:stop:step (stop included) or a comma list.")]
Samples = Annotated[int, typer.Option(help="Soft perturbations per pi (and for raw Soft-NS/NC), averaged.")]
MaskUnit = Annotated[str, typer.Option(help="One Bernoulli draw per token, or per embedding 'element' (as ReAGent).")]
GenStride = Annotated[int, typer.Option(help="Generation: evaluate steps 0, N, 2N, ... and average them per sequence.")]

# Record streams (explain, evaluate).
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Start --output afresh instead of resuming it.")]


def __getattr__(name: str) -> Any:
    """``METRIC_DEFAULTS``, made when first imported: the metrics package loads torch."""
    if name == "METRIC_DEFAULTS":
        from ..metrics import MetricSettings

        globals()[name] = MetricSettings()
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


BOOLEAN_WORDS = {"true", "false", "yes", "no", "on", "off", "1", "0", "y", "n", "t", "f"}


def check_one_source(text: str | None, input: str | None, dataset: str | None) -> None:
    """Exactly one of TEXT, ``--input`` and ``--dataset`` (explain), or a BadInput that says what was given.

    A value after a flag (``--balanced true``) is read as TEXT, since a flag takes none; with
    ``--input`` or ``--dataset`` given too, the error names the flag rather than asking for the
    ``--dataset`` the user did give.
    """
    given = [(name, value) for name, value in (("TEXT", text), ("--input", input), ("--dataset", dataset)) if value is not None]
    if len(given) == 1:
        return
    if not given:
        raise BadInput("give one of a TEXT argument, --input FILE or --dataset NAME")
    flags = _flags_given()
    if text is not None and text.strip().lower() in BOOLEAN_WORDS and flags:
        names = " and ".join(flags)
        verb = "is a flag and takes" if len(flags) == 1 else "are flags and take"
        raise BadInput(f"{names} {verb} no value; {_short(text)} was read as the TEXT argument (write {flags[0]} alone to turn it on)")
    shown = ", ".join(f"{name} {_short(value)}" for name, value in given)
    raise BadInput(f"give only one of a TEXT argument, --input FILE or --dataset NAME, not {shown}")


def _short(value: str, limit: int = 40) -> str:
    return repr(value if len(value) <= limit else value[: limit - 3] + "...")


def _flags_given() -> list[str]:
    """The flags (options that take no value) set on the command line of the command running now."""
    context = _current_context()
    if context is None:
        return []
    names = []
    for param in context.command.params:
        if getattr(param, "is_flag", False) and param.name and param.expose_value:
            source = context.get_parameter_source(param.name)
            if source is not None and source.name == "COMMANDLINE":
                names.append(max(param.opts, key=len))
    return names


def _current_context():
    """The click context of the command being run, if any (recent Typer ships its own copy of click)."""
    try:
        from typer._click.globals import get_current_context
    except ImportError:
        from click import get_current_context
    return get_current_context(silent=True)
