"""The sweep's progress bar: units done, rate and time left (see :mod:`gradellm_cli.progress`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ..progress import progress_bar


@contextmanager
def unit_progress(total: int, already_done: int) -> Iterator[Callable[[str], None]]:
    """Yield ``advance(description)``, the unit just finished; silent when stderr is not a terminal."""
    with progress_bar("sweep", total, unit="units", resumed=already_done) as advance:
        yield lambda description: advance(description=description)
