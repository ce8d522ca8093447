"""The ``gradellm`` command line: a thin Typer layer over the Python API.

Every failure becomes one line on stderr and an exit code (see ``errors.py``); set GRADELLM_DEBUG=1
to see the traceback instead.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
from collections.abc import Callable

import typer

from .errors import EXIT_INTERRUPTED, one_line_errors

app = typer.Typer(
    name="gradellm",
    help="Explain what a decoder-only LLM looked at for each token (Grad-ELLM), and measure how faithful it is.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# (module under gradellm_cli.commands, function, extra help shown under the command's --help)
COMMANDS = [
    ("explain", "explain", "EXAMPLES"),
    ("methods", "methods", None),
    ("evaluate", "evaluate", "EXAMPLES"),
    ("render", "render", "EXAMPLES"),
    ("sweep", "sweep", "EXAMPLES"),
]


def _register() -> None:
    for module_name, function_name, examples in COMMANDS:
        module = importlib.import_module(f".commands.{module_name}", __package__)
        epilog = getattr(module, examples, None) if examples else None
        app.command(name=module_name.replace("_", "-"), epilog=epilog)(_one_line(getattr(module, function_name)))


def _one_line(command: Callable) -> Callable:
    """Run ``command`` under :func:`one_line_errors` *inside* Typer's call.

    Typer turns a KeyboardInterrupt raised in a command into ``Exit(130)``, which with
    ``standalone_mode=False`` comes back as a return value, not an exception: an entry-point-level
    handler never sees Ctrl-C, and the process would exit 0 without a word. Mapped here, Ctrl-C ends
    with the one-line "interrupted" message and exit 130 like every other failure.
    ``functools.wraps`` keeps the signature and annotations Typer reads the options from.
    """

    @functools.wraps(command)
    def run(*args, **kwargs):
        with one_line_errors():
            return command(*args, **kwargs)

    return run


def _quiet_libraries() -> None:
    """Library progress bars and warnings would drown our one-line messages."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def main() -> None:
    try:
        _register()
    except ModuleNotFoundError as exc:  # a broken install: say which package, not a traceback
        print(f"gradellm: error: the package {exc.name!r} is missing: reinstall gradellm (make setup or pip install -e .)", file=sys.stderr)
        sys.exit(1)
    _quiet_libraries()
    code = _run_app(debug=bool(os.environ.get("GRADELLM_DEBUG")))
    if code == EXIT_INTERRUPTED:  # Ctrl-C outside a command (while parsing): Typer's own Exit(130)
        print("gradellm: interrupted", file=sys.stderr)
    if isinstance(code, int) and code:
        sys.exit(code)


def _run_app(debug: bool) -> object:
    """Typer's return value: with ``standalone_mode=False`` an ``Exit(code)`` comes back as ``code``."""
    try:
        with one_line_errors():
            return app(standalone_mode=False)
    except typer.Abort:
        sys.exit(1)
    except Exception as exc:  # noqa: BLE001 - the promise is: never a traceback
        if debug:
            raise
        if _is_click_error(exc):  # a usage error: unknown command or option, bad option value
            context = getattr(exc, "ctx", None)
            command = context.command_path if context is not None else "gradellm"
            print(f"gradellm: error: {exc.format_message()} (see {command} --help)", file=sys.stderr)
            sys.exit(exc.exit_code)
        print(f"gradellm: internal error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}", file=sys.stderr)
        sys.exit(1)


def _is_click_error(exc: Exception) -> bool:
    """click's usage errors, matched by shape: recent Typer ships its own copy of click, so an
    ``isinstance`` against the ``click`` package misses them (they printed as internal errors, exit 1)."""
    return callable(getattr(exc, "format_message", None)) and isinstance(getattr(exc, "exit_code", None), int)
