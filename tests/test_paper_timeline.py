"""The paper run's wall time: runs/paper/publish.py (the README's figure) and runs/paper/snapshot.sh
(each snapshot commit's message) read timeline.log by one rule, written twice (Python and awk, since
snapshot.sh must run without the venv). These tests hold both to the rule on a constructed timeline.

The rule: a segment runs from a ``start`` line to the last line before the next ``start`` (units
done after it were lost with the session's disk, or, on a ``recovered`` line, kept and counted up
to their last record); nothing after a ``finish`` counts; extra fields after the epoch are ignored.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

import pytest

PAPER = Path(__file__).resolve().parents[1] / "runs" / "paper"

# (kind, epoch, extra fields); the segments by hand: 0-900, 1000-1100, 2000-2500 (recovered), 3000-3600
TIMELINE = [
    ("start", 0, ""),
    ("snapshot", 600, "10"),
    ("snapshot", 900, "12"),  # the session ended after this snapshot; its disk was lost
    ("start", 1000, ""),
    ("stop", 1100, ""),  # a sweep crashed, resume.sh restarted it at once
    ("start", 2000, "cpu=AMD_EPYC nproc=2"),
    ("snapshot", 2400, "20"),
    ("recovered", 2500, "22"),  # the disk outlived the session: 2 units kept, counted to 2500
    ("start", 3000, "cpu=AMD_EPYC nproc=2"),
    ("finish", 3600, ""),
    ("snapshot", 3700, "30"),  # after the finish: not counted
]
EXPECTED_SECONDS = 900 + 100 + 500 + 600


def write_timeline(path: Path) -> Path:
    lines = [f"{kind} 1970-01-01T00:00:00Z {epoch} {extra}".rstrip() for kind, epoch, extra in TIMELINE]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_publish_counts_the_segments_of_the_rule(tmp_path):
    spec = importlib.util.spec_from_file_location("paper_publish", PAPER / "publish.py")
    publish = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(publish)
    assert publish.wall_hours(write_timeline(tmp_path / "timeline.log")) == pytest.approx(EXPECTED_SECONDS / 3600)


@pytest.mark.skipif(shutil.which("awk") is None, reason="snapshot.sh's rule is an awk program")
def test_snapshot_awk_counts_the_same(tmp_path):
    program = re.search(r"hours=\$\(awk '(.*?)' \"\$RUN/timeline.log\"\)", (PAPER / "snapshot.sh").read_text(), re.DOTALL)
    assert program, "snapshot.sh no longer computes hours=$(awk '...' \"$RUN/timeline.log\")"
    hours = subprocess.run(
        ["awk", program.group(1), str(write_timeline(tmp_path / "timeline.log"))], capture_output=True, text=True, check=True
    ).stdout
    assert hours == f"{EXPECTED_SECONDS / 3600:.2f}"
