"""The ``gradellm`` command line: a thin Typer layer over the Python API.

Every failure becomes one line on stderr and an exit code (see ``errors.py``); set GRADELLM_DEBUG=1
to see the traceback instead.
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.util
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption
from typer.main import get_command_from_info
from typer.models import CommandInfo

from .errors import EXIT_INTERRUPTED, INTERRUPTED_MESSAGE, GradellmError, interrupted, one_line_errors

# (module under gradellm_cli.commands, function, extra help shown under the command's --help)
COMMANDS = [
    ("explain", "explain", "EXAMPLES"),
    ("methods", "methods", None),
    ("evaluate", "evaluate", "EXAMPLES"),
    ("render", "render", "EXAMPLES"),
    ("sweep", "sweep", "EXAMPLES"),
]
MODEL_FREE = {"methods", "render"}  # commands that load no model: no transformers logging set-up before they run
SHELLS = ("bash", "zsh", "fish", "powershell", "pwsh")  # what Typer's completion scripts cover
COMPLETION_OPTIONS = ("--install-completion", "--show-completion")
SHELL_KEY = "gradellm.completion_shell"  # ctx.meta: the shell named after a completion option

_SPECS = {module.replace("_", "-"): (module, function, examples) for module, function, examples in COMMANDS}
_loaded: dict[str, TyperCommand] = {}  # command name -> its click command, once its module is imported


class _Unloaded(TyperCommand):
    """A command whose module is not imported yet: its name and help text for ``gradellm --help`` and
    completion. :meth:`_Commands.resolve_command` puts the real command in its place before it runs or
    shows its own help."""


class _Friendly:
    """Help and usage errors that read as a Unix tool's: see :func:`_tidy`; an option's usage error
    (``--id`` without its value) names the command whose ``--help`` to read."""

    def get_params(self, ctx):
        params = super().get_params(ctx)
        for param in params:
            _tidy(param)
        return params

    def parse_args(self, ctx, args):
        try:
            return super().parse_args(ctx, args)
        except Exception as exc:
            if getattr(exc, "ctx", True) is None:  # click's option parser raises without the context
                exc.ctx = ctx
            raise


class _Command(_Friendly, TyperCommand):
    pass


class _Commands(_Friendly, TyperGroup):
    """The top-level group: a command's module (and with it torch and transformers) is imported only
    when that command runs or shows its own ``--help``; ``gradellm --help`` and completion of command
    names read the help text from the modules' source instead (milliseconds, not seconds)."""

    def __init__(self, **attrs):
        super().__init__(**attrs)
        for name in _SPECS:
            self.commands.setdefault(name, _loaded.get(name) or _unloaded(name))

    def parse_args(self, ctx, args):
        """``--show-completion bash``: the shell after a completion flag is its value (a flag takes
        none, and Typer's completion options take no shell but detect it)."""
        args = list(args)
        for index, arg in enumerate(args):
            if not arg.startswith("-") or arg == "--":  # the command: its own options follow
                break
            if arg in COMPLETION_OPTIONS and index + 1 < len(args) and not args[index + 1].startswith("-"):
                ctx.meta[SHELL_KEY] = args.pop(index + 1)
                break
        return super().parse_args(ctx, args)

    def resolve_command(self, ctx, args):
        name, command, rest = super().resolve_command(ctx, args)
        if isinstance(command, _Unloaded):
            command = self.commands[name] = _load(name)
        return name, command, rest

    def _main_shell_completion(self, *args, **kwargs):
        from typer.completion import completion_init

        completion_init()  # Typer's bash/zsh/fish/powershell answers, as its own --install-completion sets up
        return super()._main_shell_completion(*args, **kwargs)


class _Option(TyperOption):
    def display_type_rich(self, ctx):
        """A flag takes no value, so its help shows none (Typer's rich help prints ``<bool>``)."""
        if self.is_flag or self.count:
            return self.metavar  # [SHELL] of --show-completion, else nothing
        return super().display_type_rich(ctx)


class _Argument(TyperArgument):
    def display_type_rich(self, ctx):
        """The name column already says what it is (TEXT, FILE), without ``<str>`` or ``<list[str]>``."""
        return None

    def get_usage_pieces(self, ctx):
        """``FILE...`` and ``[TEXT]`` as Unix usage lines write them, not Typer's ``{FILE}...``."""
        name = self.metavar or (self.name or "").upper()
        name = f"{name}..." if self.nargs != 1 else name
        return [name if self.required else f"[{name}]"]


def _tidy(param) -> None:
    """Name values the way ``--help`` of a Unix tool does: an argument by its name in capitals (TEXT),
    a repeatable option after itself (``--id ID``, not ``<list[str]>``), a flag not at all. Idempotent."""
    if type(param) is TyperOption:
        if param.metavar is None and param.multiple and not param.is_flag:
            longest = max(param.opts, key=len)
            param.metavar = longest.lstrip("-").replace("-", "_").upper()
        param.__class__ = _Option
    elif type(param) is TyperArgument:
        if param.metavar is None and param.name:
            param.metavar = param.name.upper()
        param.__class__ = _Argument


def _completion(install: bool) -> Callable:
    """``--install-completion [SHELL]`` / ``--show-completion [SHELL]``: Typer's, for the shell named
    after the option (see :meth:`_Commands.parse_args`) or else the one detected (the running shell,
    then $SHELL)."""

    def callback(ctx, param, value):
        if not value or ctx.resilient_parsing:
            return value
        from typer import completion

        shell = ctx.meta.get(SHELL_KEY) or _detect_shell()
        if shell not in SHELLS:
            how = f"{shell!r} is not one of" if shell else "cannot tell the shell: name one of"
            raise typer.BadParameter(f"{how} {', '.join(SHELLS)}", ctx=ctx, param=param)
        (completion.install_callback if install else completion.show_callback)(ctx, param, shell)

    return callback


def _detect_shell() -> str:
    try:
        import shellingham

        name = shellingham.detect_shell()[0]
    except Exception:  # noqa: BLE001 - no /proc, no ps, no shell among the parents
        name = ""
    if name not in SHELLS:  # make's sh, a Python parent: the login shell may still be one we complete
        name = Path(os.environ.get("SHELL", "")).name
    return name


app = typer.Typer(
    name="gradellm",
    help="Explain what a decoder-only LLM looked at for each token (Grad-ELLM), and measure how faithful it is.",
    cls=_Commands,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,  # ours below take the shell as a value: gradellm --show-completion bash
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
    install_completion: bool = typer.Option(
        False, "--install-completion", metavar="[SHELL]", callback=_completion(install=True), is_eager=True, expose_value=False,
        help=f"Install tab completion for SHELL ({', '.join(SHELLS)}; default: the current shell).",
    ),
    show_completion: bool = typer.Option(
        False, "--show-completion", metavar="[SHELL]", callback=_completion(install=False), is_eager=True, expose_value=False,
        help="Print the completion script for SHELL, to copy it or customise the installation.",
    ),
) -> None:
    pass


def _unloaded(name: str) -> TyperCommand:
    """The placeholder of a command: its help text read from its module's source, not imported."""
    module_name, function_name, _ = _SPECS[name]
    docstring = _source_docstring(module_name, function_name)
    if docstring is None:  # no source to read (a byte-code-only install): import it after all
        return _load(name)
    return _Unloaded(name=name, help=docstring)


def _source_docstring(module_name: str, function_name: str) -> str | None:
    spec = importlib.util.find_spec(f"{__package__}.commands.{module_name}")
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    try:
        tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == function_name:
            return ast.get_docstring(node)
    return None


def _load(name: str) -> TyperCommand:
    """Import a command's module and build its click command (once per process)."""
    if name not in _loaded:
        module_name, function_name, examples = _SPECS[name]
        module = importlib.import_module(f".commands.{module_name}", __package__)
        epilog = getattr(module, examples, None) if examples else None
        callback = _one_line(getattr(module, function_name), quiet=name not in MODEL_FREE)
        info = CommandInfo(name=name, cls=_Command, callback=callback, epilog=epilog)
        _loaded[name] = get_command_from_info(
            info, pretty_exceptions_short=app.pretty_exceptions_short, rich_markup_mode=app.rich_markup_mode
        )
    return _loaded[name]


def _register() -> None:
    """Import every command now (in-process tests; the CLI itself imports only the one it runs)."""
    for name in _SPECS:
        _load(name)


def _one_line(command: Callable, quiet: bool = False) -> Callable:
    """Run ``command`` under :func:`one_line_errors` *inside* Typer's call.

    Typer turns a KeyboardInterrupt raised in a command into ``Exit(130)``, which with
    ``standalone_mode=False`` comes back as a return value, not an exception: an entry-point-level
    handler never sees Ctrl-C, and the process would exit 0 without a word. Mapped here, Ctrl-C ends
    with the one-line "interrupted" message and exit 130 like every other failure.
    ``functools.wraps`` keeps the signature and annotations Typer reads the options from.
    ``quiet``: silence transformers first (commands that load a model; only once they run, so that
    ``--help`` does not import it).
    """

    @functools.wraps(command)
    def run(*args, **kwargs):
        with one_line_errors():
            if quiet:
                _quiet_libraries()
            try:
                return command(*args, **kwargs)
            except GradellmError as exc:  # a line break in a record id or a quoted value: still one line
                exc.message = _one_line_text(with_flags(exc.message))
                exc.record = None if exc.record is None else _one_line_text(str(exc.record))
                raise

    return run


PARAMETER = re.compile(r"`([a-z][a-z0-9_]*)`")


def with_flags(message: str) -> str:
    """The one place where the library's words meet the command line's: library errors name a parameter
    as `name` (what a Python caller passes); here it becomes the running command's flag for it
    (`ig_steps` -> --ig-steps), or the flag spelled the same way where the command has none."""
    import click

    context = click.get_current_context(silent=True)
    flags = {}
    for param in getattr(getattr(context, "command", None), "params", []):
        long = [opt for opt in param.opts if opt.startswith("--")]
        if param.name and long:
            flags[param.name] = long[0]
    return PARAMETER.sub(lambda match: flags.get(match[1], "--" + match[1].replace("_", "-")), message)


def _one_line_text(text: str) -> str:
    return text.replace("\r", "\\r").replace("\n", "\\n")


def _quiet_libraries() -> None:
    """Library progress bars and warnings would drown our one-line messages."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def main() -> None:
    debug = bool(os.environ.get("GRADELLM_DEBUG"))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    with one_line_errors():  # Ctrl-C at any moment, even while torch is being imported: one line, exit 130
        code = _run_app(debug)
    if code == EXIT_INTERRUPTED:  # Ctrl-C while Typer parsed the options or imported a command: Typer's Exit(130)
        print(INTERRUPTED_MESSAGE, file=sys.stderr)
    if isinstance(code, int) and code:
        sys.exit(code)


def _run_app(debug: bool) -> object:
    """Typer's return value: with ``standalone_mode=False`` an ``Exit(code)`` comes back as ``code``."""
    try:
        return app(standalone_mode=False)
    except typer.Abort:
        sys.exit(1)
    except GradellmError:
        raise  # one_line_errors in main() prints it
    except ModuleNotFoundError as exc:  # a broken install (a command imports its modules as it runs): what is missing
        if debug:
            raise
        _exit_if_interrupted()
        print(f"gradellm: internal error: cannot import {exc.name!r}: reinstall gradellm (make setup or pip install -e .)", file=sys.stderr)
        sys.exit(1)
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
    message = " ".join(exc.format_message().splitlines())  # one line, whatever the message holds
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
