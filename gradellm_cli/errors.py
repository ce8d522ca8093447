"""Errors the user can act on.

Every failure the CLI reports is a :class:`GradellmError` with one line of text and an exit code, so
the CLI can print it without a traceback. ``record`` names the input record it concerns, when there is one.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

# Exit codes, documented in the README.
EXIT_OK = 0
EXIT_BAD_INPUT = 2  # malformed or invalid input record / option
EXIT_NOT_FOUND = 3  # unknown model, method, task, dataset, file
EXIT_IO = 4  # output could not be written (disk full, permissions)
EXIT_SKIPPED = 5  # run finished but some records were skipped
EXIT_INTERRUPTED = 130  # Ctrl-C


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


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Turn a GradellmError into one line on stderr and its exit code, and Ctrl-C into exit 130.

    The one place this mapping lives: the CLI's entry point uses it, and so does any command that
    must keep its exit codes when driven on its own (tests call commands through their own Typer app).
    GRADELLM_DEBUG=1 re-raises instead, for a traceback.
    """
    try:
        yield
    except GradellmError as exc:
        if os.environ.get("GRADELLM_DEBUG"):
            raise
        print(f"gradellm: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("gradellm: interrupted; records written so far are kept, rerun the same command to resume", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
