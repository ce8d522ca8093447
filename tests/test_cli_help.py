"""The command line's own surface: ``--version``, and an example under every command's ``--help``."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from gradellm_cli import __version__, cli

COMMANDS = [name for name, _, _ in cli.COMMANDS]


def test_version_prints_the_package_version_and_exits_0(app):
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"gradellm {__version__}\n"
    assert CliRunner().invoke(app, ["--version", "no-such-command"]).stdout == f"gradellm {__version__}\n"  # eager


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_help_has_an_example(app, command):
    result = CliRunner().invoke(app, [command, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "Example" in result.stdout and f"gradellm {command}" in result.stdout


def test_version_from_the_console_script_imports_no_command():
    """`gradellm --version` answers without loading the commands (torch, transformers): a fast check."""
    import subprocess
    import sys

    code = "import sys; sys.argv = ['gradellm', '--version']; from gradellm_cli.entry import main; main(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out == f"gradellm {__version__}\nFalse\n"


def test_h_is_help_and_methods_lists_one_per_line_in_a_pipe(app):
    assert "Usage: gradellm" in CliRunner().invoke(app, ["-h"]).stdout
    assert "Usage: gradellm render" in CliRunner().invoke(app, ["render", "-h"]).stdout
    lines = CliRunner().invoke(app, ["methods"]).stdout.splitlines()
    names = [line.split("\t")[0] for line in lines]
    assert names[0] == "grad-ellm" and {"udig", "dig", "value-zeroing", "value-occlusion"} <= set(names)
    assert all(line.count("\t") == 1 for line in lines)


@pytest.mark.parametrize("options, message", [
    (["--layers", "last:x"], "--layers 'last:x'"),
    (["--method", "integrated-gradients", "--ig-steps", "0"], "--ig-steps must be at least 1"),
    (["--method", "attention", "--attention-layers", "some"], "--attention-layers"),
    (["--method", "udig", "--strategy", "random"], "--strategy"),
    (["--output", "/no/such/folder/x.jsonl"], "does not exist"),
])
def test_option_values_are_refused_before_the_model_loads(app, monkeypatch, options, message):
    from gradellm_cli import explain

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the options were checked")

    monkeypatch.setattr(explain.Explainer, "__init__", no_model)
    result = CliRunner().invoke(app, ["explain", "a text", *options])
    assert result.exit_code == 2 and message in result.stderr


def test_a_malformed_layers_value_is_refused_before_torch_is_imported():
    import subprocess
    import sys

    code = (
        "import sys\nfrom gradellm_cli.cli import main\nsys.argv = ['gradellm', 'explain', 'x', '--layers', 'last:x']\n"
        "try:\n    main()\nexcept SystemExit as exit:\n    print(exit.code, 'torch' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.split() == ["2", "False"], result.stdout + result.stderr
    assert "--layers 'last:x'" in result.stderr
