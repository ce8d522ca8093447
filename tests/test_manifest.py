"""The run folder's manifest: written once, atomically, compared on every rerun."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from gradellm_cli.errors import BadInput
from gradellm_cli.sweep import manifest as manifest_module
from gradellm_cli.sweep.manifest import MANIFEST, check_or_write, read_manifest

MANIFEST_A = {"manifest_version": 1, "options": {"samples": 3}, "written_at": "then"}


def test_written_once_then_compared(tmp_path):
    run_dir = tmp_path / "run"
    assert check_or_write(run_dir, MANIFEST_A) is False  # a new folder: written
    assert read_manifest(run_dir / MANIFEST) == MANIFEST_A
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((run_dir / MANIFEST).stat().st_mode) == 0o666 & ~umask  # as any file the user writes
    assert [p.name for p in run_dir.iterdir() if p.name != f".{MANIFEST}.lock"] == [MANIFEST]  # no temporary file left
    assert check_or_write(run_dir, MANIFEST_A | {"written_at": "now"}) is True  # the same run: resumed
    with pytest.raises(BadInput, match=r"different configuration \(options.samples: 3 before, 1 now\)"):
        check_or_write(run_dir, MANIFEST_A | {"options": {"samples": 1}})


def test_records_without_a_manifest_are_refused(tmp_path):
    (tmp_path / "heatmaps.jsonl").write_text("{}\n")
    with pytest.raises(BadInput, match="holds records but no manifest.json"):
        check_or_write(tmp_path, MANIFEST_A)


def test_a_shard_starting_at_the_same_moment_as_another_resumes_its_folder(tmp_path, monkeypatch):
    """Shard 0 finds no manifest; shard 1 then writes it and its first records before shard 0 lists
    the folder. Shard 0 must see the manifest and go on, not call the folder foreign."""
    listing = Path.iterdir

    def other_shard_was_quicker(self):
        manifest_module._write(self / MANIFEST, MANIFEST_A)
        (self / "heatmaps.shard-1-of-2.jsonl").write_text("")
        return listing(self)

    tmp_path.joinpath("run").mkdir()
    monkeypatch.setattr(Path, "iterdir", other_shard_was_quicker)
    assert check_or_write(tmp_path / "run", MANIFEST_A) is True


def test_shards_starting_together_with_other_options_take_turns(tmp_path):
    """Shard 1 (other options) asks while shard 0 holds the manifest lock, about to write its own
    manifest: shard 1 must wait, then read shard 0's manifest and be refused, not write its own over it."""
    import threading

    from filelock import FileLock

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    shard_0 = FileLock(str(run_dir / f".{MANIFEST}.lock"))
    shard_0.acquire()
    outcome: list[object] = []

    def shard_1() -> None:
        try:
            outcome.append(check_or_write(run_dir, MANIFEST_A | {"options": {"samples": 1}}))
        except BadInput as exc:
            outcome.append(exc)

    thread = threading.Thread(target=shard_1)
    thread.start()
    thread.join(timeout=1.0)
    assert thread.is_alive() and not (run_dir / MANIFEST).exists()  # waiting, nothing written
    manifest_module._write(run_dir / MANIFEST, MANIFEST_A)
    shard_0.release()
    thread.join(timeout=30)
    assert len(outcome) == 1 and isinstance(outcome[0], BadInput)
    assert "options.samples: 3 before, 1 now" in str(outcome[0])
    assert read_manifest(run_dir / MANIFEST) == MANIFEST_A
