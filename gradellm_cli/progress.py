"""Progress bars that show on a terminal and stay silent in a pipe.

Rate and time left are averages over every item this process has worked on since it started, not
rich's default (a 30-second sliding window): an IMDb record with every method, or a paper-scale sweep
unit, takes minutes, so a 30-second window almost never holds two completions and the bar would show
no rate and no time left for most of a run. Items skipped because an earlier run did them (resuming)
count toward the bar but not toward the rate.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn
from rich.text import Text


def run_rate(task) -> float | None:
    """Items per second over the items worked on in this process; None before the first one finishes."""
    ran = task.completed - task.fields.get("resumed", 0)
    elapsed = task.elapsed
    if ran <= 0 or not elapsed:
        return None
    return ran / elapsed


def time_left(task) -> float | None:
    """Seconds left at :func:`run_rate`; None while there is no rate."""
    rate = run_rate(task)
    if rate is None or task.total is None:
        return None
    return max(task.total - task.completed, 0) / rate


def clock(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


class RateColumn(ProgressColumn):
    def __init__(self, unit: str):
        super().__init__()
        self.unit = unit

    def render(self, task) -> Text:
        rate = run_rate(task)
        return Text(f"-- {self.unit}/min" if rate is None else f"{rate * 60:.2f} {self.unit}/min")


class TimeLeftColumn(ProgressColumn):
    def render(self, task) -> Text:
        left = time_left(task)
        return Text("left --:--:--" if left is None else f"left {clock(left)}", style="progress.remaining")


_ACTIVE: list[Progress] = []  # the bar being drawn, if any (one at a time)


@contextmanager
def paused(stream: TextIO | None = None) -> Iterator[None]:
    """Take the bar off the terminal while something is written to ``stream`` (default stdout), then
    draw it again.

    The bar is drawn on stderr; a line written to the same terminal by anything but the bar's own
    console (a second Console, a JSONL writer) would land in the middle of it: rich's stdout/stderr
    redirection does not reach them. Stopping the transient bar erases it; starting it again redraws it
    below what was written. Nothing to do when the stream is a pipe or a file.
    """
    stream = stream or sys.stdout
    if not _ACTIVE or not stream.isatty():
        yield
        return
    progress = _ACTIVE[-1]
    progress.stop()
    try:
        yield
    finally:
        stream.flush()
        progress.start()


@contextmanager
def progress_bar(description: str, total: int | None, unit: str = "records", resumed: int = 0) -> Iterator[Callable[..., None]]:
    """Yield ``advance(ran=True, description=None)``, called once per item when it is finished
    (``ran=False`` for an item an earlier run already did). Draws on stderr only when it is a terminal."""
    if not sys.stderr.isatty():
        yield lambda ran=True, description=None: None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(unit), TimeElapsedColumn(),
               TimeLeftColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True, redirect_stdout=False) as progress:
        _ACTIVE.append(progress)
        task = progress.add_task(description, total=total, completed=resumed, resumed=resumed)
        skipped = [resumed]

        def advance(ran: bool = True, description: str | None = None) -> None:
            skipped[0] += not ran
            changes = {"description": description} if description is not None else {}
            progress.update(task, advance=1, resumed=skipped[0], **changes)

        try:
            yield advance
        finally:
            _ACTIVE.remove(progress)
