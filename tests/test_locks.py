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
