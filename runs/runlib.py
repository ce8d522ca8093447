"""What the runs' publish scripts share (``runs/baselines/publish.py``, ``runs/udig/publish.py``): a run's
wall time from its ``timeline.log``, and a docs page's section between two markers rewritten."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path


def wall_hours(timeline: Path, running_until_now: bool = False) -> float:
    """Hours during which at least one part of a run was running, from ``start NAME ISO-TIME ...`` and
    ``stop NAME ISO-TIME ...`` lines (as the runs' resume.sh scripts write them): the union of the
    start-stop spans; with ``running_until_now``, parts started but not stopped count up to now."""
    spans, open_at = [], {}
    for line in timeline.read_text().splitlines():
        kind, name, stamp = line.split()[:3]
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        if kind == "start":
            open_at[name] = moment
        elif kind == "stop" and name in open_at:
            spans.append((open_at.pop(name), moment))
    if running_until_now:
        spans += [(start, datetime.now(timezone.utc)) for start in open_at.values()]
    spans.sort()
    total, end = 0.0, None
    for start, stop in spans:  # the union of the spans
        if end is None or start > end:
            total += (stop - start).total_seconds()
            end = stop
        elif stop > end:
            total += (stop - end).total_seconds()
            end = stop
    return total / 3600


def write_between(page: Path, begin: str, end: str, lines: list[str]) -> None:
    """Replace what stands between the markers ``begin`` and ``end`` of ``page`` (markers kept) with ``lines``."""
    text = page.read_text(encoding="utf-8")
    if begin not in text or end not in text:
        raise SystemExit(f"publish.py: {page} has no {begin} ... {end} markers")
    before, _, rest = text.partition(begin)
    _, _, after = rest.partition(end)
    page.write_text(before + "\n".join([begin, *lines, end]) + after, encoding="utf-8")
