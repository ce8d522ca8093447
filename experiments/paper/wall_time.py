"""The paper run's wall time, read from ``timeline.log``: one rule for ``snapshot.sh`` (each snapshot
commit's message) and ``publish.py`` (the README's figure).

    python3 experiments/paper/wall_time.py experiments/paper/timeline.log    # hours, two decimals

Standard library only: ``snapshot.sh`` runs it with the system ``python3``, outside any venv.

The rule: a segment runs from a ``start`` line to the last line before the next ``start`` (units done
after a machine's last snapshot were lost with its disk; a hand-written ``recovered`` line counts
those a surviving disk kept, up to their last record); nothing after a ``finish`` counts. Only the
first and third fields (kind, epoch seconds) are read; ``start`` lines carry ``cpu=`` and ``nproc=``.
"""

from __future__ import annotations

import sys
from pathlib import Path


def wall_hours(timeline: Path) -> float:
    """Sum over segments of the time from a ``start`` to the last line after it, in hours."""
    total, begin, last, over = 0.0, None, None, False
    for line in timeline.read_text().splitlines():
        kind, _, stamp, *_ = line.split()
        if kind == "start":
            if begin is not None and last is not None:
                total += last - begin
            begin, last, over = int(stamp), None, False
        elif not over and begin is not None:
            last = int(stamp)
            over = kind == "finish"
    if begin is not None and last is not None:
        total += last - begin
    return total / 3600


if __name__ == "__main__":
    print(f"{wall_hours(Path(sys.argv[1])):.2f}")
