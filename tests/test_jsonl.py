"""The JSONL layer every command writes through: a failed write (full disk) leaves only whole lines and
is one :class:`OutputError` (exit 4); a reader skips a partial last line; a rerun cuts it."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from gradellm_cli.errors import EXIT_IO, OutputError
from gradellm_cli.jsonl import JsonlWriter, completed_lines, whole_lines


class HalfThenFull:
    """A file handle whose next write lands half its bytes on disk, then fails like a full disk."""

    def __init__(self, handle):
        self.handle = handle

    def write(self, payload: bytes) -> int:
        self.handle.write(payload[: len(payload) // 2])
        self.handle.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self.handle, name)


def test_a_full_disk_mid_write_keeps_only_the_whole_records_before_it(tmp_path):
    path = tmp_path / "out.jsonl"
    writer = JsonlWriter(str(path))
    writer.write([{"id": "a", "scores": [1.0, 2.0]}])
    writer._handle = HalfThenFull(writer._handle)
    with pytest.raises(OutputError, match="the disk is full") as caught:
        writer.write([{"id": "b", "scores": [3.0] * 50}, {"id": "c", "scores": [4.0]}])
    writer.close()
    assert caught.value.exit_code == EXIT_IO
    assert path.read_bytes().endswith(b"\n")  # the half-written record was cut
    assert [record["id"] for record in completed_lines(path)] == ["a"]


class Trickle:
    """A raw file handle that takes at most ``most`` bytes per write (as a raw write may)."""

    def __init__(self, handle, most: int):
        self.handle, self.most = handle, most

    def write(self, payload) -> int:
        return self.handle.write(bytes(payload[: self.most])) if self.most else 0

    def __getattr__(self, name):
        return getattr(self.handle, name)


def test_short_raw_writes_are_completed_and_a_write_taking_nothing_is_an_error(tmp_path):
    path = tmp_path / "out.jsonl"
    writer = JsonlWriter(str(path))
    writer._handle = Trickle(writer._handle, 7)
    records = [{"id": str(i), "scores": [0.5] * i} for i in range(5)]
    writer.write(records)
    assert completed_lines(path) == records
    writer._handle = Trickle(writer._handle.handle, 0)
    with pytest.raises(OutputError, match="accepted no bytes"):
        writer.write([{"id": "never"}])  # would loop forever if 0 bytes counted as progress
    writer.close()
    assert completed_lines(path) == records


def test_devices_and_pipes_are_written_without_sync_or_resume(tmp_path):
    writer = JsonlWriter("/dev/null")  # fsync on /dev/null fails with EINVAL: not attempted
    writer.write([{"id": "a"}])
    writer.close()
    assert completed_lines(Path("/dev/null")) == []


def test_readers_pass_over_a_partial_last_line_and_resume_cuts_it(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_bytes(orjson.dumps({"id": "a"}) + b"\n" + b'{"id": "b", "sco')
    assert [r["id"] for r in whole_lines(path)] == ["a"]
    assert path.read_bytes().endswith(b'"sco')  # whole_lines only reads: safe beside a running writer
    assert [r["id"] for r in completed_lines(path)] == ["a"]
    assert path.read_bytes() == orjson.dumps({"id": "a"}) + b"\n"


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_explain_to_a_full_device_is_one_line_and_exit_4():
    result = subprocess.run(
        [sys.executable, "-m", "gradellm_cli", "explain", "a fine film", "--output", "/dev/full", "--no-show"],
        capture_output=True, timeout=600, cwd=Path(__file__).resolve().parents[1],
    )
    err = result.stderr.decode().strip()
    assert result.returncode == EXIT_IO, err
    assert err == "gradellm: error: cannot write to /dev/full: the disk is full"


def test_a_reader_that_goes_away_ends_the_writer_quietly():
    """`gradellm ... --output - | head -1`: no message on stderr, exit 141 as a Unix tool killed by SIGPIPE."""
    import subprocess
    import sys

    writer = ("from gradellm_cli.errors import one_line_errors\nfrom gradellm_cli.jsonl import JsonlWriter\n"
              "with one_line_errors():\n    with JsonlWriter('-') as out:\n        for i in range(200000):\n"
              "            out.write([{'i': i}])\n")
    script = f"{sys.executable} -c \"$WRITER\" | head -1; echo \"status=${{PIPESTATUS[0]}}\""
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env={"WRITER": writer}, timeout=120)
    assert result.stdout.splitlines() == ['{"i":0}', "status=141"]
    assert result.stderr == ""


def test_an_output_in_a_missing_folder_is_refused_not_created(tmp_path):
    from gradellm_cli.errors import BadInput
    from gradellm_cli.jsonl import check_output

    check_output(str(tmp_path / "x.jsonl"))
    check_output("-")
    with pytest.raises(BadInput, match="does not exist"):
        check_output(str(tmp_path / "no" / "such" / "x.jsonl"))
    assert not (tmp_path / "no").exists()
