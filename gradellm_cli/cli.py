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

from .errors import EXIT_INTERRUPTED, INTERRUPTED_MESSAGE, GradellmError, interrupted, one_line_errors

app = typer.Typer(
    name="gradellm",
    help="Explain what a decoder-only LLM looked at for each token (Grad-ELLM), and measure how faithful it is.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    """``gradellm --version``: what a bug report or a methods section needs first (records carry it as
    ``config.gradellm_version`` too). Eager, so it answers before any command is looked at."""
    if value:
        from . import __version__

        print(f"gradellm {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True, help="Print gradellm's version and exit."),
) -> None:
    pass


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
    debug = bool(os.environ.get("GRADELLM_DEBUG"))
    with one_line_errors():  # Ctrl-C at any moment, even while torch is being imported: one line, exit 130
        _register_commands(debug)
        _quiet_libraries()
        code = _run_app(debug)
    if code == EXIT_INTERRUPTED:  # Ctrl-C while Typer parsed the options: Typer's own Exit(130)
        print(INTERRUPTED_MESSAGE, file=sys.stderr)
    if isinstance(code, int) and code:
        sys.exit(code)


def _register_commands(debug: bool) -> None:
    try:
        _register()
    except ModuleNotFoundError as exc:  # a broken install: say what is missing, not a traceback
        if debug:
            raise
        _exit_if_interrupted()
        print(f"gradellm: internal error: cannot import {exc.name!r}: reinstall gradellm (make setup or pip install -e .)", file=sys.stderr)
        sys.exit(1)


def _run_app(debug: bool) -> object:
    """Typer's return value: with ``standalone_mode=False`` an ``Exit(code)`` comes back as ``code``."""
    try:
        return app(standalone_mode=False)
    except typer.Abort:
        sys.exit(1)
    except GradellmError:
        raise  # one_line_errors in main() prints it
    except Exception as exc:  # noqa: BLE001 - the promise is: never a traceback
        if debug:
            raise
        _exit_if_interrupted()
        if isinstance(exc, _click_errors()):  # a usage error: unknown command or option, bad option value
            _usage_error(exc)
        print(f"gradellm: internal error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}", file=sys.stderr)
        sys.exit(1)


def _exit_if_interrupted() -> None:
    """A library turned the user's Ctrl-C into another error: report the interruption (exit 130)."""
    if interrupted():
        print(INTERRUPTED_MESSAGE, file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)


def _usage_error(exc) -> None:
    """One line naming the problem and the help to read; none when there is no message (``gradellm``
    alone: Typer has printed the help already)."""
    message = exc.format_message()
    if message:
        context = getattr(exc, "ctx", None)
        command = context.command_path if context is not None else "gradellm"
        print(f"gradellm: error: {message} (see {command} --help)", file=sys.stderr)
    sys.exit(exc.exit_code)


def _click_errors() -> tuple[type[Exception], ...]:
    """click's exception class, and the one of the copy of click that recent Typer ships (an
    ``isinstance`` against the ``click`` package alone misses Typer's; they printed as internal errors)."""
    import click

    classes: list[type[Exception]] = [click.ClickException]
    try:
        from typer._click.exceptions import ClickException as typer_click_exception
    except ImportError:  # a Typer that uses the click package itself
        return tuple(classes)
    return (*classes, typer_click_exception)
