"""``RUN_DIR/manifest.json``: the versions, options, seed and unit plan a run folder was made with.

A run folder holds records of exactly one configuration: a rerun whose manifest differs (other
options, other selected records, other library versions) is refused with a one-line error that
names the first difference, and a rerun with the same manifest resumes. ``written_at`` and
``sources`` (where the data files were found) are kept for information and not compared.
"""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

from ..atomic import replace_atomically
from ..errors import BadInput, OutputError
from ..locks import held_while_preparing

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
_INFO = ("written_at", "sources")


def build_manifest(options: dict[str, Any], plan: dict[str, Any], sources: dict[str, str]) -> dict[str, Any]:
    import time

    import torch
    import transformers

    from .. import __version__

    return {
        "manifest_version": MANIFEST_VERSION,
        "versions": {
            "gradellm": __version__,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "python": platform.python_version(),
        },
        "seed": options["metrics"]["seed"],
        "options": options,
        "plan": plan,
        "sources": sources,
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def check_or_write(run_dir: Path, manifest: dict[str, Any]) -> bool:
    """Write the manifest into a new run folder, or check it against the one there; True when resuming.

    Under the folder's hidden ``.manifest.json.lock``: two shards started at the same moment into a new
    folder with *different* options would otherwise both find no manifest and both write theirs, and
    the folder would mix two configurations. With the lock the second one reads the first one's
    manifest and is refused (or resumes, when the options agree)."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot make `output_dir` {run_dir}: {exc.strerror}") from None
    with held_while_preparing(run_dir / f".{MANIFEST}"):
        return _check_or_write(run_dir, manifest)


def _check_or_write(run_dir: Path, manifest: dict[str, Any]) -> bool:
    path = run_dir / MANIFEST
    if not path.exists():
        has_records = any(p.name.endswith(".jsonl") for p in run_dir.iterdir())
        if not has_records:
            _write(path, manifest)
            return False
        if not path.exists():  # not written meanwhile by a shard that took no lock (no flock on this file system)
            raise BadInput(f"{run_dir} holds records but no {MANIFEST}; use a new `output_dir`")
    old = _with_later_options(read_manifest(path))
    difference = first_difference(_compared(old), _compared(_with_later_options(manifest)))
    if difference is not None:
        raise BadInput(f"{run_dir} was made with a different configuration ({difference}); use a new `output_dir`")
    return True


def read_manifest(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        raise BadInput(f"{path} cannot be read as JSON; move the folder aside") from None
    if not isinstance(data, dict):
        raise BadInput(f"{path} is not a gradellm sweep manifest")
    return data


# options added after manifests were first written, with the value that earlier runs used: a flat
# manifest (before 0.5.0) without them reads as having these
ADDED_LATER: dict[str, Any] = {
    "continuation_field": "continuation", "messages_field": "messages", "source_roles": ["user"], "vz_layers": "all",
    "attention_layers": "last", "similarity": "rope-qk", "grad_at": "pre-o", "kv_expansion": "grouped",
    "dig_steps": 30, "neighbours": 30, "strategy": "greedy", "upscale": 0, "baseline_token": None, "topk": 0.2,
}


def _with_later_options(manifest: dict[str, Any]) -> dict[str, Any]:
    """A manifest in today's form: the flat options of a manifest before 0.5.0 (the command line's
    names, some options not yet there) read as the composed options they stand for, so a comparison
    names the real difference (the release, usually) rather than the layout."""
    from .plan import SweepOptions

    options = manifest.get("options")
    if isinstance(options, dict) and "explain" not in options:
        try:
            options = SweepOptions.from_flat(**(ADDED_LATER | options)).as_dict()
        except (TypeError, ValueError, BadInput):
            return manifest  # not a layout this release knows: compared as it is
        manifest = manifest | {"options": options}
    return manifest


def _compared(manifest: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in manifest.items() if key not in _INFO}


def first_difference(old: Any, new: Any, where: str = "", labels: tuple[str, str] = ("before", "now")) -> str | None:
    """The dotted path of the first difference, e.g. ``options.samples: 1 before, 3 now``; None when equal."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            found = first_difference(old.get(key), new.get(key), f"{where}.{key}" if where else key, labels)
            if found:
                return found
        return None
    if old != new:
        shown = [json.dumps(value)[:60] for value in (old, new)]
        return f"{where or 'manifest'}: {shown[0]} {labels[0]}, {shown[1]} {labels[1]}"
    return None


def _write(path: Path, manifest: dict[str, Any]) -> None:
    """Atomic: shards starting together each write the same content; a reader never sees half a file."""
    replace_atomically(path, (json.dumps(manifest, indent=2) + "\n").encode())
