"""``sweep_to``: a whole sweep (or this process's shard of it) into a run folder, resumable, one writer per shard.

What ``gradellm sweep`` runs, for Python users too: the plan is built (data sets loaded and selected,
model names resolved) before anything is written; the folder's manifest is written, or compared with
the one there (a run folder holds one configuration); this shard's done log is locked (a second
process on the same shard is refused); a unit cut off by a kill is cut from the files; then every
pending unit is explained and evaluated and committed whole.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import GradellmError
from ..locks import sole_writer
from .manifest import build_manifest, check_or_write
from .plan import SweepOptions, build_plan
from .runner import Outcome, run_sweep
from .sharding import Shard, parse_shard, process_device
from .store import DONE, ShardStore, done_lines


def sweep_to(output_dir: str | Path, options: SweepOptions, shard: str | Shard | None = None) -> Outcome:
    """Run ``options`` into ``output_dir``; with ``shard`` (``"i/n"``; default: RANK/WORLD_SIZE from the
    environment, else the whole run) only that share of the units. Returns what this process did:
    units run, found done, and failed (their error records say why)."""
    from ..methods import check_method_options, parse_methods

    the_shard = shard if isinstance(shard, Shard) else parse_shard(shard)
    placement = process_device(options.device)  # before anything is written: a device map under a multi-process launch is refused
    check_method_options(parse_methods(",".join(options.methods)), options.explain.options)
    plan = build_plan(options)
    run_dir = Path(output_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise GradellmError(f"`output_dir` {output_dir} is a file, not a folder")
    manifest = build_manifest(options.as_dict(), plan.summary(), {d.name: d.source for d in plan.datasets})
    check_or_write(run_dir, manifest)
    store = ShardStore(run_dir, the_shard)
    with sole_writer(store.paths[DONE], f"shard {the_shard} of {run_dir}"):
        store.resume()
        store.open()
        try:
            groups = [group for group in plan.groups if the_shard.owns(group.index)]
            return run_sweep(plan, options, groups, done_lines(run_dir), store, placement)
        finally:
            store.close()
