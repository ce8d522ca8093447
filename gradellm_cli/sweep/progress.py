"""The sweep's progress bar: units done, rate and time left, drawn on a terminal only.

Rate and time left are averages over every unit this process has run since it started, not rich's
default (a 30-second sliding window): a paper-scale unit takes minutes, so a 30-second window almost
never holds two completions and the bar would show no rate and no time left for most of a run.
Resumed units (done by an earlier run) count toward the bar but not toward the rate.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn
from rich.text import Text


def run_rate(task) -> float | None:
    """Units per second over the units run in this process; None before the first one finishes."""
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
    def render(self, task) -> Text:
        rate = run_rate(task)
        return Text("-- units/min" if rate is None else f"{rate * 60:.2f} units/min")


class TimeLeftColumn(ProgressColumn):
    def render(self, task) -> Text:
        left = time_left(task)
        return Text("left --:--:--" if left is None else f"left {clock(left)}", style="progress.remaining")


@contextmanager
def unit_progress(total: int, already_done: int) -> Iterator[Callable[[str], None]]:
    """Yield ``advance(description)``; silent (a no-op) when stderr is not a terminal."""
    if not sys.stderr.isatty():
        yield lambda description: None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TimeLeftColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("sweep", total=total, completed=already_done, resumed=already_done)

        def advance(description: str) -> None:
            progress.update(task, advance=1, description=description)

        yield advance
