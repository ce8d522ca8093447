"""JSON Lines in and out, with errors that name the line, and writes that survive interruption.

Output records for one input are written with one ``write`` call and flushed (and fsynced for files)
before the next input starts, so a run killed at any moment leaves whole lines plus at most one
partial last line, which :func:`completed_lines` trims away before a resumed run appends. (A write
that SIGKILL cuts short may also end after whole lines of an unfinished input: the commands check
their last records for that too, and cut them with :func:`rewrite_jsonl`.)
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from .atomic import replace_atomically
from .errors import BadInput, NotFound, OutputError, PipeClosed


@dataclass
class InputLine:
    """One input line: its 1-based number, and either the parsed object or why it could not be."""

    number: int
    data: dict[str, Any] | None
    error: str | None = None


def line_id(number: int) -> str:
    """The id of a JSONL record without an id field, wherever it is read (``--input`` or ``--dataset``):
    ``line-N``, N its 1-based line number in the file."""
    return f"line-{number}"


def read_jsonl(path: str) -> Iterator[InputLine]:
    """Yield every non-blank line of ``path`` (``-`` for stdin), parsed, or with its error."""
    handle = _open_input(path)
    try:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                data = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                yield InputLine(number, None, f"line {number} is not valid JSON ({exc.msg})")
                continue
            if not isinstance(data, dict):
                yield InputLine(number, None, f"line {number} is not a JSON object")
                continue
            yield InputLine(number, data)
    finally:
        if handle is not sys.stdin.buffer:
            handle.close()


def check_input(path: str) -> None:
    """Fail now, with the one-line error reading would give, if ``path`` cannot be read: commands call
    this before loading a model or writing anything (``read_jsonl`` is lazy and would fail later).
    It looks without opening: opening a named pipe would wait for its writer, and closing it would
    break the pipe under the writer."""
    if path == "-":
        return
    target = Path(path)
    if not target.exists():
        raise _missing_input(path)
    if target.is_dir():
        raise _folder_input(path)
    if not os.access(target, os.R_OK):
        raise BadInput(f"input file {path} cannot be read (permission denied)")


def count_lines(path: str) -> int | None:
    """Non-blank lines of a JSONL file, for a progress bar's total; None for stdin or an unreadable path."""
    if path == "-" or not Path(path).is_file():
        return None
    with open(path, "rb") as handle:
        return sum(1 for raw in handle if raw.strip())


def _open_input(path: str) -> IO[bytes]:
    if path == "-":
        return sys.stdin.buffer
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise _missing_input(path) from None
    except IsADirectoryError:
        raise _folder_input(path) from None


def _missing_input(path: str) -> NotFound:
    return NotFound(f"input file {path} does not exist")


def _folder_input(path: str) -> BadInput:
    return BadInput(f"input {path} is a folder, not a JSONL file")


def whole_lines(path: Path, hint: str = "") -> list[dict[str, Any]]:
    """The records on the whole lines of ``path``, read-only: a partial last line (a write still going
    on, or a killed one) is passed over, never cut, so this is safe on a file another process appends to.
    """
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise BadInput(f"{path} is a folder, not a JSONL file") from None
    return _parse_whole_lines(data, path, hint)


def completed_lines(path: Path) -> list[dict[str, Any]]:
    """The whole records already in ``path``; a trailing partial line (a killed write) is cut off the file.

    Only a regular file has anything to resume: a missing path, a folder (opening it for writing fails
    next, with its own message) or a device or pipe (``/dev/null``; ``/dev/full`` would read zeros
    until memory runs out) has none.
    """
    if not path.is_file():
        return []
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data):
        with open(path, "r+b") as handle:
            handle.truncate(end)
    return _parse_whole_lines(data, path, "move the output aside")


def rewrite_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """Replace ``path`` by these records atomically, so a kill during a resume's cleanup leaves the old
    or the new file, never half of one (the caller holds the output's lock: nobody else writes it)."""
    payload = b"".join(orjson.dumps(r, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n" for r in records)
    replace_atomically(path, payload, "rewrite")


def _parse_whole_lines(data: bytes, path: Path, hint: str) -> list[dict[str, Any]]:
    """The JSON objects on the lines of ``data`` up to its last newline; a whole line that is not JSON
    is a :class:`BadInput` naming the file and the line (``hint`` says what to do about it)."""
    records = []
    for number, raw in enumerate(data[: data.rfind(b"\n") + 1].split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            record = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise BadInput(f"{path}: line {number} is not valid JSON ({exc.msg}){'; ' + hint if hint else ''}") from None
        if isinstance(record, dict):
            records.append(record)
    return records


def _write_all(handle: IO[bytes], payload: bytes) -> None:
    """An unbuffered (raw) write may take only part of the bytes; write until all of them are out.
    A write that takes nothing (0, or None from a non-blocking descriptor) is an error, not a retry
    forever."""
    view = memoryview(payload)
    while view:
        written = handle.write(view)
        if not written:
            raise OSError(errno.EIO, "the output accepted no bytes")
        view = view[written:]


def check_output(path: str | None) -> None:
    """Refuse, before any model loads, an ``--output`` file whose folder does not exist or cannot be
    written: a mistyped path is an error, not a new folder tree."""
    if path in (None, "-"):
        return
    folder = Path(path).parent
    if not folder.is_dir():
        raise BadInput(f"`output` {path}: the folder {folder} does not exist (create it first)")
    if not os.access(folder, os.W_OK) or (Path(path).exists() and not os.access(path, os.W_OK)):
        raise OutputError(f"cannot write {path}: permission denied")


class JsonlWriter:
    """Appends records to a file (or writes them to stdout for ``-``), one flushed batch at a time."""

    def __init__(self, path: str | None):
        self.path = path
        self._handle: IO[bytes] | None = None
        self._regular = False  # a regular file (not stdout, /dev/null or a pipe)
        if path is None:
            return
        if path == "-":
            self._handle = sys.stdout.buffer
        else:
            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                # Unbuffered: a write that fails (full disk) must leave no bytes behind in a buffer that
                # closing the file would flush after the half-written record has been cut off.
                self._handle = open(path, "ab", buffering=0)
                # Only a regular file can be synced and cut back; /dev/null or a pipe is written as it is.
                self._regular = stat.S_ISREG(os.fstat(self._handle.fileno()).st_mode)
            except OSError as exc:
                raise OutputError(f"cannot open {path} for writing: {exc.strerror}") from None

    def write(self, records: Iterable[dict[str, Any]]) -> None:
        if self._handle is None:
            return
        payload = b"".join(orjson.dumps(r, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n" for r in records)
        start = os.fstat(self._handle.fileno()).st_size if self._regular else 0
        try:
            if self.path == "-":
                self._handle.write(payload)
                self._handle.flush()
            else:
                _write_all(self._handle, payload)
                if self._regular:
                    os.fsync(self._handle.fileno())
        except BrokenPipeError:
            raise PipeClosed("the output pipe was closed") from None
        except OSError as exc:
            self._cut_back(start)
            reason = "the disk is full" if exc.errno == errno.ENOSPC else exc.strerror
            raise OutputError(f"cannot write to {self.path}: {reason}") from None

    def _cut_back(self, size: int) -> None:
        """After a failed write, cut a regular file back to its size before the write (whole lines only)."""
        if not self._regular:
            return
        try:
            os.ftruncate(self._handle.fileno(), size)
        except OSError:
            pass  # the write's own error is the one to report

    def close(self) -> None:
        handle, self._handle = self._handle, None
        if handle is None or self.path == "-":
            return
        try:
            handle.close()
        except OSError as exc:
            raise OutputError(f"cannot close {self.path}: {exc.strerror}") from None

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
