"""Which share of the units this process runs, and the file names its share writes.

Group g of the plan (one model, dataset and record, with all its methods) goes to shard ``g % n``:
keeping a record's methods together means each shard prepares (and, for generation, greedily
decodes) a record once. ``--shard i/n`` picks the shard; without it, ``accelerate launch`` and
``torchrun`` are recognised by the ``RANK``/``WORLD_SIZE`` environment variables they set.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..errors import BadInput


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    def owns(self, group_index: int) -> bool:
        return group_index % self.count == self.index

    def file_name(self, stem: str) -> str:
        """``heatmaps.jsonl`` for an unsharded run, ``heatmaps.shard-0-of-2.jsonl`` for shard 0 of 2."""
        return f"{stem}.jsonl" if self.count == 1 else f"{stem}.shard-{self.index}-of-{self.count}.jsonl"

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(spec: str | None, environ: dict[str, str] | None = None) -> Shard:
    """``--shard i/n``, else RANK/WORLD_SIZE from the environment (accelerate, torchrun), else 0/1."""
    environ = os.environ if environ is None else environ
    if spec is None:
        return shard_from_env(environ)
    if environ.get("WORLD_SIZE", "1").strip() not in ("", "0", "1"):
        raise BadInput(
            f"`shard` {spec} under a launch of WORLD_SIZE={environ['WORLD_SIZE']} processes gives every process the same shard; "
            "drop `shard` (each process takes RANK of WORLD_SIZE)"
        )
    index, slash, count = spec.partition("/")
    try:
        shard = Shard(int(index), int(count))
    except ValueError:
        raise BadInput(f"cannot read `shard` {spec!r}: use i/n, e.g. 0/2") from None
    if not slash or shard.count < 1 or not 0 <= shard.index < shard.count:
        raise BadInput(f"`shard` {spec!r} needs 0 <= i < n")
    return shard


def shard_from_env(environ) -> Shard:
    """accelerate launch and torchrun set RANK and WORLD_SIZE for every process they start."""
    try:
        count = int(environ.get("WORLD_SIZE", "1"))
        index = int(environ.get("RANK", "0"))
    except ValueError:
        raise BadInput("RANK and WORLD_SIZE must be integers") from None
    if count < 1 or not 0 <= index < count:
        raise BadInput(f"RANK={index} WORLD_SIZE={count} do not describe a process of the launch")
    return Shard(index, count)


def process_device(device: str, environ=None) -> str:
    """Under a multi-process launch, ``auto`` means this process's own GPU (``cuda:LOCAL_RANK``).

    A device map (``map:...``) spreads one model over every GPU, so several processes would each load
    a copy over the same GPUs: refused; use one process with ``map:auto``, or ``auto`` per process.
    """
    environ = os.environ if environ is None else environ
    if device.startswith("map:") and shard_from_env(environ).count > 1:
        raise BadInput(f"`device` {device} spreads one model over all GPUs: run it as one process, not under a multi-process launch")
    if device != "auto" or "LOCAL_RANK" not in environ:
        return device
    import torch

    if not torch.cuda.is_available():
        return "cpu"
    return f"cuda:{int(environ['LOCAL_RANK']) % torch.cuda.device_count()}"
