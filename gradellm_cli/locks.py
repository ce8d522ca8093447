"""One writer per output: a second process writing the same file would undo the first one's records.

Resuming cuts a torn last line off an output (``explain``, ``evaluate``) or rewrites a shard's files
without the records of an unfinished unit (``sweep``). Done by a second process while the first is
still writing (a second launch of the same command, a batch job requeued while the old one runs),
it cuts the first one's records
in flight, and whatever the first writes after that goes to a file that is no longer there. So each
run holds an exclusive lock for as long as it writes: a hidden ``.NAME.lock`` file beside the output
(``filelock``: ``flock`` on POSIX, released by the kernel when the process dies, even by SIGKILL).
"""

from __future__ import annotations

import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import BadInput, OutputError


def lock_path(output: Path) -> Path:
    """The lock file of ``output``: hidden, beside it, so that it is never taken for a record file."""
    return output.with_name(f".{output.name}.lock")


@contextmanager
def sole_writer(output: str | Path | None, what: str = "") -> Iterator[None]:
    """Hold the lock of ``output`` while the block runs; a one-line error when another process holds it.

    Standard output (``-``), no output, and outputs that are not regular files (``/dev/null``, a pipe)
    have nothing to resume and take no lock.
    """
    if output is None or str(output) == "-":
        yield
        return
    path = Path(output)
    if path.exists() and not stat.S_ISREG(path.stat().st_mode):
        yield
        return
    from filelock import FileLock, Timeout

    lock = FileLock(str(lock_path(path)), timeout=0)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    except Timeout:
        raise BadInput(f"another gradellm process is writing {what or path}; wait for it to end, or write elsewhere") from None
    except OSError as exc:
        raise OutputError(f"cannot lock {path} for writing: {exc.strerror}") from None
    try:
        yield
    finally:
        lock.release()
