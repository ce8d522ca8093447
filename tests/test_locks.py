"""One writer per output: a second process on the same output is refused before it cuts anything."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from filelock import FileLock

from gradellm_cli.errors import BadInput
from gradellm_cli.locks import lock_path, sole_writer

ROOT = Path(__file__).resolve().parents[1]


def test_a_held_output_is_refused_and_a_released_one_is_not(tmp_path):
    output = tmp_path / "out.jsonl"
    with sole_writer(output):
        with pytest.raises(BadInput, match="another gradellm process is writing"):
            with sole_writer(output):
                pass
    with sole_writer(output):  # released at the end of the block (and by the kernel if the process dies)
        pass
    assert lock_path(output).name == ".out.jsonl.lock"


def test_stdout_and_devices_take_no_lock(tmp_path):
    for output in (None, "-", "/dev/null"):
        with sole_writer(output):
            with sole_writer(output):  # nothing to resume there, so nothing to protect
                pass
    assert not Path("/dev/.null.lock").exists()


def test_a_second_explain_on_the_same_output_exits_2_before_loading_the_model(tmp_path):
    output = tmp_path / "heatmaps.jsonl"
    output.write_bytes(b'{"kind": "heatmap", "id": "in flight"}\n')
    with FileLock(str(lock_path(output))):  # the first process, still writing
        result = subprocess.run(
            [sys.executable, "-m", "gradellm_cli", "explain", "a fine film", "--output", str(output)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
        )
    assert result.returncode == 2, result.stderr
    assert "another gradellm process is writing" in result.stderr and result.stderr.strip().count("\n") == 0
    assert output.read_bytes() == b'{"kind": "heatmap", "id": "in flight"}\n'  # untouched


def test_where_no_lock_can_be_made_the_run_goes_on_with_a_note(tmp_path, monkeypatch, capsys):
    """A writable file in a folder we may not write to, or a file system without flock (older
    filelock raises NotImplementedError there): the lock is a safeguard, not a condition of writing."""
    import filelock

    for failure in (PermissionError(13, "Permission denied"), NotImplementedError("no flock")):

        def refuse(self, *args, failure=failure, **kwargs):
            raise failure

        monkeypatch.setattr(filelock.FileLock, "acquire", refuse)
        with sole_writer(tmp_path / "out.jsonl"):
            pass
        assert "is written without a lock" in capsys.readouterr().err


def test_links_to_pipes_take_no_lock_and_links_to_files_lock_the_file(tmp_path):
    import os

    read_end, write_end = os.pipe()
    try:
        with sole_writer(f"/proc/self/fd/{write_end}"):  # `--output /dev/stdout` piped somewhere
            pass
    finally:
        os.close(read_end)
        os.close(write_end)
    real, link = tmp_path / "real.jsonl", tmp_path / "link.jsonl"
    real.write_text("")
    link.symlink_to(real)
    with sole_writer(link):
        with pytest.raises(BadInput):
            with sole_writer(real):  # the same file under another name: the same lock
                pass
    assert not list(Path("/proc/self/fd").glob(".*.lock"))


def test_overwrite_empties_regular_files_and_leaves_devices_alone(tmp_path):
    from gradellm_cli.locks import truncate_for_overwrite

    real, link = tmp_path / "real.jsonl", tmp_path / "link.jsonl"
    real.write_text('{"old": 1}\n')
    link.symlink_to(real)
    truncate_for_overwrite(str(link))
    assert link.is_symlink() and real.read_bytes() == b""
    truncate_for_overwrite("/dev/null")  # as root, unlinking it (the old --overwrite) would remove /dev/null
    assert Path("/dev/null").is_char_device()
