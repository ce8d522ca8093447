"""The sweep's progress bar: units done, rate and time left, drawn on a terminal only."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.text import Text


class RateColumn(ProgressColumn):
    """Units per minute over the units run in this process (resumed units do not inflate it)."""

    def render(self, task) -> Text:
        speed = task.speed
        return Text("-- units/min" if speed is None else f"{speed * 60:.1f} units/min")


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
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("sweep", total=total, completed=already_done)

        def advance(description: str) -> None:
            progress.update(task, advance=1, description=description)

        yield advance
