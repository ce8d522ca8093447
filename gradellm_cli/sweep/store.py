"""The run folder's record files, and the commit rule that makes a killed run resume exactly.

Each shard writes three files: ``heatmaps[.shard-i-of-n].jsonl``, ``metrics[...].jsonl`` and
``done[...].jsonl``. A unit is committed in three appends, each flushed and fsynced: its heatmap
records, then its metric records, then one line with its key in the done log. A unit counts as done
only once its key is in a done log, so a kill at any moment leaves at most one unit half-written;
on resume that unit's records are cut off the end of this shard's files and the unit is
run again. Readers take from each file only the records of units its own done log committed, and
each record once, so the files of every shard merge into exactly the records of an uninterrupted run.

This module imports neither torch nor transformers, so reports can read a run folder cheaply.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import BadInput, OutputError
from ..jsonl import JsonlWriter, completed_lines, rewrite_jsonl, whole_lines
from .sharding import Shard

HEATMAPS, METRICS, DONE = "heatmaps", "metrics", "done"
UnitKey = tuple[str, str, str, str]  # (dataset, model, method, record id)


def unit_of(record: dict[str, Any]) -> UnitKey:
    """The unit a written record belongs to (the sweep adds ``dataset`` to every record it writes)."""
    return (str(record.get("dataset")), str(record.get("model")), str(record.get("method")), str(record.get("id")))


def done_key(record: dict[str, Any]) -> UnitKey:
    return tuple(record["unit"])  # type: ignore[return-value]


def done_units(run_dir: Path) -> set[UnitKey]:
    """Units committed by any shard of this run folder."""
    return set(done_lines(run_dir))


def done_lines(run_dir: Path) -> dict[UnitKey, dict[str, Any]]:
    """The done line of every committed unit (``failed`` marks a unit that could not be explained)."""
    done: dict[UnitKey, dict[str, Any]] = {}
    for path in sorted(run_dir.glob(f"{DONE}*.jsonl")):
        for record in whole_lines(path, hint="move the run folder aside"):
            done.setdefault(done_key(record), record)
    return done


class ShardStore:
    """This process's three files in the run folder: resume cleanup, then one commit per unit."""

    def __init__(self, run_dir: Path, shard: Shard):
        self.paths = {stem: run_dir / shard.file_name(stem) for stem in (HEATMAPS, METRICS, DONE)}
        self._writers: dict[str, JsonlWriter] = {}

    def resume(self) -> None:
        """Cut the records of units this shard started but did not commit (a kill mid-unit)."""
        committed = {done_key(record) for record in completed_lines(self.paths[DONE])}
        for stem in (HEATMAPS, METRICS):
            _cut_uncommitted(self.paths[stem], committed)

    def open(self) -> None:
        self._writers = {stem: JsonlWriter(str(path)) for stem, path in self.paths.items()}

    def commit(self, unit: UnitKey, heatmaps: list[dict[str, Any]], metrics: list[dict[str, Any]], failed: bool = False) -> None:
        """Heatmaps, then metrics, then the done line: the unit is done only when all three are on disk."""
        self._writers[HEATMAPS].write(heatmaps)
        self._writers[METRICS].write(metrics)
        line = {"unit": list(unit), "heatmaps": len(heatmaps), "metrics": len(metrics)}
        self._writers[DONE].write([line | {"failed": True} if failed else line])

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers = {}


def _cut_uncommitted(path: Path, committed: set[UnitKey]) -> None:
    """Remove the records of uncommitted units from one of this shard's files.

    With one writer per shard they are the file's tail (the unit in progress when the run stopped), so
    the file is cut there in place: no copy of a file that may be large, and no free space needed
    after a full disk. Anything else (records written by hand, blank lines) takes an atomic rewrite.
    """
    records = completed_lines(path)  # also cuts a torn last line
    kept = [record for record in records if unit_of(record) in committed]
    if len(kept) == len(records):
        return
    data = path.read_bytes()
    if records[: len(kept)] == kept and data.count(b"\n") == len(records):  # a tail, one record per line
        offset = 0
        for _ in kept:
            offset = data.index(b"\n", offset) + 1
        try:
            with open(path, "r+b") as handle:
                handle.truncate(offset)
                os.fsync(handle.fileno())
        except OSError as exc:
            raise OutputError(f"cannot cut {path}: {exc.strerror}") from None
    else:
        rewrite_jsonl(path, kept)


def read_run(run_dir: str | Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(heatmap records, metric records) of a run folder: every shard's files merged, done units only, no duplicates.

    Metric records include error records (undefined metrics) and generation sequence records (step -1).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise BadInput(f"{run_dir} is not a sweep run folder")
    return _merged(run_dir, HEATMAPS), _merged(run_dir, METRICS)


def read_run_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The metric records of :func:`read_run` alone, without reading the (larger) heatmap files."""
    return _merged(run_dir, METRICS)


def read_run_heatmaps(run_dir: Path) -> list[dict[str, Any]]:
    """The heatmap records of :func:`read_run` alone."""
    return _merged(run_dir, HEATMAPS)


def _merged(run_dir: Path, stem: str) -> list[dict[str, Any]]:
    """Each file's records of the units its own done log committed, each record once.

    Not any shard's: after a resume with another shard count, a unit killed half-way under the old
    count and committed under the new one has records in both layouts' files, and only the committed
    attempt's belong to the run (on a GPU the two attempts' numbers may differ).
    """
    seen: set[tuple] = set()
    out = []
    for path in sorted(run_dir.glob(f"{stem}*.jsonl")):
        done_log = path.with_name(DONE + path.name[len(stem) :])  # heatmaps.shard-0-of-2.jsonl -> done.shard-0-of-2.jsonl
        committed = {done_key(r) for r in whole_lines(done_log, hint="move the run folder aside")} if done_log.is_file() else set()
        for record in whole_lines(path, hint="move the run folder aside"):
            key = (record.get("kind"), *unit_of(record), record.get("step"))
            if unit_of(record) in committed and key not in seen:
                seen.add(key)
                out.append(record)
    return out
