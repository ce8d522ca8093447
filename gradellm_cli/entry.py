"""The ``gradellm`` console script and ``python -m gradellm_cli``: the CLI, with Ctrl-C covered from the start.

Importing the CLI loads Typer, rich and (through the commands) torch and transformers, which takes
seconds; a Ctrl-C in that time would stop Python with a traceback before :func:`gradellm_cli.cli.main`
could map it. This module imports nothing heavy itself, so it can catch it.
"""

from __future__ import annotations

import sys

from .errors import EXIT_INTERRUPTED, INTERRUPTED_MESSAGE, watch_interrupts


def main() -> None:
    if sys.argv[1:] == ["--version"]:  # answered before the commands (and torch) are imported: milliseconds
        from . import __version__

        print(f"gradellm {__version__}")
        return
    watch_interrupts()
    try:
        from .cli import main as run
    except KeyboardInterrupt:
        print(INTERRUPTED_MESSAGE, file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    run()
