"""The ``gradellm`` command line: a thin Typer layer over the Python API.

Every failure becomes one line on stderr and an exit code (see ``errors.py``); set GRADELLM_DEBUG=1
to see the traceback instead.
"""

from __future__ import annotations

import importlib
import os
import sys

import typer

from .errors import one_line_errors

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
        try:
            module = importlib.import_module(f".commands.{module_name}", __package__)
        except ModuleNotFoundError:
            continue
        epilog = getattr(module, examples, None) if examples else None
        app.command(name=module_name.replace("_", "-"), epilog=epilog)(getattr(module, function_name))


def _quiet_libraries() -> None:
    """Library progress bars and warnings would drown our one-line messages."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def main() -> None:
    _register()
    _quiet_libraries()
    debug = bool(os.environ.get("GRADELLM_DEBUG"))
    try:
        with one_line_errors():
            app(standalone_mode=False)
    except (typer.Abort, typer.Exit) as exc:
        sys.exit(getattr(exc, "exit_code", 1))
    except Exception as exc:  # noqa: BLE001 - the promise is: never a traceback
        if debug:
            raise
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        print(f"gradellm: internal error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}", file=sys.stderr)
        sys.exit(1)
