"""Errors the user can act on.

Every failure the CLI reports is a :class:`GradellmError` with one line of text and an exit code, so
the CLI can print it without a traceback. ``record`` names the input record it concerns, when there is one.
"""

from __future__ import annotations

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
