"""One writer per output: a second process writing the same file would undo the first one's records.

Resuming cuts a torn last line off an output (``explain``, ``evaluate``) or rewrites a shard's files
without the records of an unfinished unit (``sweep``). Done by a second process while the first is
still writing (a second launch of the same command, a batch job requeued while the old one runs),
it cuts the first one's records in flight, and whatever the first writes after that goes to a file
that is no longer there. So each run holds an exclusive lock for as long as it writes: a hidden
``.NAME.lock`` file beside the output (``filelock``: ``flock`` on POSIX, released by the kernel when
the process dies, even by SIGKILL).

The lock is a safeguard, not a condition of writing: where no lock file can be made (a folder we may
not write to though the output file is writable, a file system without ``flock``), the run goes on
without one, after a note on stderr, as it did before locks existed.
"""

from __future__ import annotations

import stat
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import BadInput, OutputError


def lock_path(output: Path) -> Path:
    """The lock file of ``output``: hidden, beside it, so that it is never taken for a record file."""
    return output.with_name(f".{output.name}.lock")


def _lockable(output: str | Path | None) -> Path | None:
    """The real path of a regular (or not yet existing) output file; None for stdout, no output, and
    devices or pipes (``/dev/null``, ``/dev/stdout``, ``/proc/self/fd/1``), which have nothing to resume."""
    if output is None or str(output) == "-":
        return None
    path = Path(output)
    try:
        if not stat.S_ISREG(path.stat().st_mode):  # follows links: /proc/self/fd/1 may be a pipe
            return None
    except FileNotFoundError:
        pass  # a new file
    except OSError:
        return None  # unreadable: opening it for writing reports the problem
    return path.resolve()  # the lock beside the real file, not beside a link to it


@contextmanager
def sole_writer(output: str | Path | None, what: str = "") -> Iterator[None]:
    """Hold the lock of ``output`` while the block runs; a one-line error when another process holds it."""
    path = _lockable(output)
    if path is None:
        yield
        return
    from filelock import FileLock, Timeout

    lock = FileLock(str(lock_path(path)), timeout=0)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    except Timeout:
        if lock_path(path).exists():  # held; a lock file that could not even be made is not
            raise BadInput(f"another gradellm process is writing {what or output}; wait for it to end, or write elsewhere") from None
        _note_unlocked(path, "the lock file cannot be made")
        lock = None
    except (OSError, NotImplementedError) as exc:  # NotImplementedError: older filelock, no flock here
        _note_unlocked(path, getattr(exc, "strerror", None) or "no file locking here")
        lock = None
    try:
        yield
    finally:
        if lock is not None:
            lock.release()


def _note_unlocked(path: Path, why: str) -> None:
    print(f"gradellm: note: {path} is written without a lock ({why}); run one process on it at a time", file=sys.stderr)


@contextmanager
def held_while_preparing(path: Path) -> Iterator[bool]:
    """Wait for, then hold, the lock of a cache entry that one process prepares for all (a model
    conversion); yields whether the lock is held. Without file locking it goes on unlocked (the entry
    is still written atomically), and the caller must not clear other processes' leftovers."""
    from filelock import FileLock

    lock = FileLock(str(path) + ".lock")
    try:
        lock.acquire()
    except (OSError, NotImplementedError):
        lock = None
    try:
        yield lock is not None
    finally:
        if lock is not None:
            lock.release()


def truncate_for_overwrite(output: str) -> None:
    """``--overwrite``: empty a regular output file in place (a symlink stays a symlink); never remove
    a device or anything else that is not a regular file (``--output /dev/null --overwrite`` as root
    would delete ``/dev/null``)."""
    path = Path(output)
    if path.is_file():
        try:
            with open(path, "r+b") as handle:
                handle.truncate(0)
        except OSError as exc:
            raise OutputError(f"cannot overwrite {output}: {exc.strerror}") from None
