"""The paper run's wall time: experiments/paper/wall_time.py reads timeline.log for both
experiments/paper/publish.py (the results page's figure) and experiments/paper/snapshot.sh (each snapshot commit's
message). These tests hold it to the rule on a constructed timeline, and both callers to it.

The rule: a segment runs from a ``start`` line to the last line before the next ``start`` (units
done after it were lost with the machine's disk, or, on a ``recovered`` line, kept and counted up
to their last record); nothing after a ``finish`` counts; extra fields after the epoch are ignored.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

PAPER = Path(__file__).resolve().parents[1]  # experiments/paper: the scripts and timeline.log

# (kind, epoch, extra fields); the segments by hand: 0-900, 1000-1100, 2000-2500 (recovered), 3000-3600
TIMELINE = [
    ("start", 0, ""),
    ("snapshot", 600, "10"),
    ("snapshot", 900, "12"),  # the machine stopped after this snapshot; its disk was lost
    ("start", 1000, ""),
    ("stop", 1100, ""),  # a sweep crashed, resume.sh restarted it at once
    ("start", 2000, "cpu=AMD_EPYC nproc=2"),
    ("snapshot", 2400, "20"),
    ("recovered", 2500, "22"),  # the disk outlived the machine: 2 units kept, counted to 2500
    ("start", 3000, "cpu=AMD_EPYC nproc=2"),
    ("finish", 3600, ""),
    ("snapshot", 3700, "30"),  # after the finish: not counted
]
EXPECTED_SECONDS = 900 + 100 + 500 + 600


def write_timeline(path: Path) -> Path:
    lines = [f"{kind} 1970-01-01T00:00:00Z {epoch} {extra}".rstrip() for kind, epoch, extra in TIMELINE]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def paper_scripts(monkeypatch):
    """runs/paper on sys.path, as for its scripts run from there (publish.py imports wall_time)."""
    monkeypatch.syspath_prepend(str(PAPER))
    yield
    for name in ("wall_time", "publish"):
        sys.modules.pop(name, None)


def test_the_segments_of_the_rule(tmp_path, paper_scripts):
    from wall_time import wall_hours

    assert wall_hours(write_timeline(tmp_path / "timeline.log")) == pytest.approx(EXPECTED_SECONDS / 3600)


def test_snapshot_and_publish_use_it(tmp_path, paper_scripts):
    import publish
    import wall_time

    assert publish.wall_hours is wall_time.wall_hours
    assert 'hours=$(python3 "$HERE/wall_time.py" "$HERE/timeline.log")' in (PAPER / "snapshot.sh").read_text()
    printed = subprocess.run(
        [sys.executable, str(PAPER / "wall_time.py"), str(write_timeline(tmp_path / "timeline.log"))],
        capture_output=True, text=True, check=True,
    ).stdout
    assert printed == f"{EXPECTED_SECONDS / 3600:.2f}\n"
