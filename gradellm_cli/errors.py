"""Errors the user can act on.

Every failure the CLI reports is a :class:`GradellmError` with one line of text and an exit code, so
the CLI can print it without a traceback. ``record`` names the input record it concerns, when there is one.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager

# Exit codes, documented in docs/records.md.
EXIT_OK = 0
EXIT_BAD_INPUT = 2  # malformed or invalid input record / option
EXIT_NOT_FOUND = 3  # unknown model, method, task, dataset, file
EXIT_IO = 4  # output could not be written (disk full, permissions)
EXIT_SKIPPED = 5  # run finished but some records were skipped
EXIT_INTERRUPTED = 130  # Ctrl-C
EXIT_PIPE_CLOSED = 141  # the reader of stdout went away (128 + SIGPIPE, as a Unix tool killed by it)
INTERRUPTED_MESSAGE = "gradellm: interrupted; records written so far are kept, rerun the same command to resume"


class GradellmError(Exception):
    """A one-line, user-facing error."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, message: str, record: str | None = None, exit_code: int | None = None):
        super().__init__(message)
        self.message = message
        self.record = record
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        where = f"record {self.record}: " if self.record is not None else ""
        return f"{where}{self.message}"


class BadInput(GradellmError):
    """The input (text, JSONL line, label, option value) cannot be used."""

    exit_code = EXIT_BAD_INPUT


class NotFound(GradellmError):
    """A named model, method, task, dataset or file does not exist."""

    exit_code = EXIT_NOT_FOUND


class OutputError(GradellmError):
    """Writing results failed (full disk, permissions)."""

    exit_code = EXIT_IO


class PipeClosed(OutputError):
    """The reader of stdout went away (``| head``): the program ends quietly, as Unix tools do, with the
    exit status of a process killed by SIGPIPE; everything written before stays written."""

    exit_code = EXIT_PIPE_CLOSED


_interrupted = False


def watch_interrupts() -> None:
    """Remember every Ctrl-C (SIGINT) while still raising KeyboardInterrupt as Python does.

    Some libraries turn a KeyboardInterrupt that lands inside them into another error (transformers'
    lazy imports report a ModuleNotFoundError); with this, the CLI still knows it was interrupted and
    says so (exit 130) instead of reporting an internal error. A SIGINT that the parent shell set to be
    ignored (a background job) stays ignored.
    """
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _on_interrupt)


def _on_interrupt(signum, frame) -> None:
    global _interrupted
    _interrupted = True
    raise KeyboardInterrupt


def interrupted() -> bool:
    """Whether a Ctrl-C arrived since :func:`watch_interrupts`."""
    return _interrupted


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Turn a GradellmError into one line on stderr and its exit code, and Ctrl-C into exit 130.

    The one place this mapping lives: the CLI wraps every command in it (``cli._one_line``) and its
    own start-up too.
    GRADELLM_DEBUG=1 re-raises instead, for a traceback.
    """
    try:
        yield
    except PipeClosed as exc:
        # no message: the reader asked for no more; stdout goes to /dev/null so that Python's own final
        # flush does not complain about the closed pipe
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(exc.exit_code)
    except GradellmError as exc:
        if os.environ.get("GRADELLM_DEBUG"):
            raise
        if interrupted():  # the error came from an interrupted call: say what the user did
            print(INTERRUPTED_MESSAGE, file=sys.stderr)
            sys.exit(EXIT_INTERRUPTED)
        print(f"gradellm: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print(INTERRUPTED_MESSAGE, file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
