"""A newcomer's first minutes with the command line: a fast ``--help``, shell completion,
help that names values as a Unix tool does, errors that say what happened on one line, and a word
before the one-time model conversion."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from gradellm_cli import cli
from gradellm_cli.commands.options import Balanced, check_one_source
from gradellm_cli.errors import BadInput

ROOT = Path(__file__).resolve().parents[1]

# The console script, run as ``gradellm`` (the name completion scripts and messages use).
RUN = """
import sys
sys.argv = ["gradellm", *sys.argv[1:]]
from gradellm_cli.entry import main
try:
    main()
finally:
    print("heavy:", [name for name in ("torch", "transformers") if name in sys.modules], file=sys.stderr)
"""


def gradellm(*args: str, env: dict[str, str] | None = None, preamble: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", preamble + RUN, *args], capture_output=True, text=True, cwd=ROOT, timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
    )


def stderr_lines(result: subprocess.CompletedProcess) -> list[str]:
    """stderr without the line RUN adds."""
    return [line for line in result.stderr.splitlines() if not line.startswith("heavy:")]


# 1. --help without torch


HELP_CALLS = [["--help"], ["-h"], *([command, "--help"] for command in ("render", "methods", "explain", "evaluate", "sweep"))]


@pytest.mark.parametrize("args", HELP_CALLS)
def test_help_imports_neither_torch_nor_transformers(args):
    result = gradellm(*args)
    assert result.returncode == 0, result.stderr
    assert "Usage: gradellm" in result.stdout
    assert "heavy: []" in result.stderr


def test_top_level_help_lists_every_command_with_its_own_help(app):
    result = CliRunner().invoke(app, ["--help"], terminal_width=200, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name, _, _ in cli.COMMANDS:
        first_line = cli._load(name).help.splitlines()[0]
        assert name in result.stdout and first_line in result.stdout


def test_the_help_read_from_the_source_is_the_commands_own():
    """``gradellm --help`` reads each command's docstring from its source instead of importing it."""
    for name, _, _ in cli.COMMANDS:
        unloaded = cli._unloaded(name)
        assert isinstance(unloaded, cli._Unloaded)
        assert unloaded.help == cli._load(name).help


def test_shared_options_import_without_torch():
    code = "import sys; import gradellm_cli.commands.options as o; print('torch' in sys.modules, o.EXPLAIN_DEFAULTS.target)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out == "False predicted\n"


def test_metric_defaults_are_the_metric_settings():
    from gradellm_cli.commands.options import METRIC_DEFAULTS
    from gradellm_cli.metrics import MetricSettings

    assert METRIC_DEFAULTS == MetricSettings()


def test_a_command_that_cannot_be_imported_is_one_line_and_exit_1():
    result = gradellm("render", "x.jsonl", preamble="import sys; sys.modules['gradellm_cli.commands.render'] = None\n")
    assert result.returncode == 1
    assert stderr_lines(result) == [
        "gradellm: internal error: cannot import 'gradellm_cli.commands.render': reinstall gradellm (make setup or pip install -e .)"
    ]


# 2. Shell completion


def test_show_completion_bash_prints_the_script():
    result = gradellm("--show-completion", "bash", env={"SHELL": "/bin/bash"})
    assert result.returncode == 0, result.stderr
    assert "_gradellm_completion()" in result.stdout and "_GRADELLM_COMPLETE=complete_bash" in result.stdout
    assert "heavy: []" in result.stderr


def test_show_completion_names_the_shell_or_detects_it():
    assert "#compdef gradellm" in gradellm("--show-completion", "zsh").stdout
    detected = gradellm("--show-completion", env={"SHELL": "/bin/bash"})  # the running shell, else $SHELL
    assert detected.returncode == 0 and "_gradellm_completion" in detected.stdout
    refused = gradellm("--show-completion", "tcsh")
    assert refused.returncode == 2
    assert stderr_lines(refused) == [
        "gradellm: error: Invalid value for '--show-completion': 'tcsh' is not one of bash, zsh, fish, powershell, pwsh"
        " (see gradellm --help)"
    ]


def test_install_completion_bash_writes_the_script_under_home(tmp_path):
    result = gradellm("--install-completion", "bash", env={"HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    script = tmp_path / ".bash_completions" / "gradellm.sh"
    assert "_gradellm_completion" in script.read_text() and str(script) in (tmp_path / ".bashrc").read_text()


def test_completion_answers_command_names_without_torch():
    result = gradellm(env={"_GRADELLM_COMPLETE": "complete_bash", "COMP_WORDS": "gradellm ex", "COMP_CWORD": "1"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["explain"]
    assert "heavy: []" in result.stderr


def test_help_lists_the_completion_options_and_h_still_works(app):
    result = CliRunner().invoke(app, ["-h"], terminal_width=200, env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "--install-completion" in result.stdout and "--show-completion" in result.stdout and "[SHELL]" in result.stdout


# 3. Help text


def test_flags_show_no_value_and_lists_a_readable_one(app):
    render = CliRunner().invoke(app, ["render", "--help"], terminal_width=200, env={"COLUMNS": "200"}).stdout
    explain = CliRunner().invoke(app, ["explain", "--help"], terminal_width=200, env={"COLUMNS": "200"}).stdout
    for text in (render, explain):
        assert "<bool>" not in text and "<list[str]>" not in text
    assert "Usage: gradellm render [OPTIONS] FILE..." in render
    assert "Usage: gradellm explain [OPTIONS] [TEXT]" in explain
    id_line = next(line for line in render.splitlines() if "--id " in line)
    assert " ID " in id_line
    balanced_line = next(line for line in explain.splitlines() if "--balanced" in line)
    assert "<" not in balanced_line


# 4. A value after a flag


def _source_command():
    app = typer.Typer()

    @app.command()
    def explain(
        text: str | None = typer.Argument(None),
        dataset: str | None = typer.Option(None, "--dataset"),
        balanced: Balanced = False,
    ) -> None:
        check_one_source(text, None, dataset)

    return app


FLAG_MESSAGE = "--balanced is a flag and takes no value; 'true' was read as the TEXT argument (write --balanced alone to turn it on)"
ONLY_ONE = "give only one of a TEXT argument, --input FILE or --dataset NAME, not"


@pytest.mark.parametrize("args, message", [
    (["--dataset", "sst2", "--balanced", "true"], FLAG_MESSAGE),
    (["a film", "--dataset", "sst2"], f"{ONLY_ONE} TEXT 'a film', --dataset 'sst2'"),
    (["--dataset", "sst2", "true"], f"{ONLY_ONE} TEXT 'true', --dataset 'sst2'"),  # no flag given: a text after all
    ([], "give one of a TEXT argument, --input FILE or --dataset NAME"),
])
def test_the_source_error_says_what_was_given(args, message):
    result = CliRunner().invoke(_source_command(), args)
    assert isinstance(result.exception, BadInput)
    assert result.exception.message == message


def test_one_source_given_passes():
    check_one_source("a film", None, None)
    check_one_source(None, None, "sst2")


def test_explain_balanced_true_says_balanced_is_a_flag():
    """``commands/explain.py`` calls ``check_one_source`` before anything heavy is imported."""
    result = gradellm("explain", "--dataset", "sst2", "--balanced", "true")
    assert result.returncode == 2
    assert stderr_lines(result) == [f"gradellm: error: {FLAG_MESSAGE}"]


# 5. One line on stderr when it is not a terminal


def test_errors_stay_on_one_line_in_a_file(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a film", "label": ' + "9" * 5000 + "]\n")  # a long line, not JSON
    result = gradellm("explain", "--input", str(bad), "--on-error", "stop", env={"COLUMNS": "30"})
    assert result.returncode == 2
    lines = stderr_lines(result)
    assert len(lines) == 1 and lines[0].startswith("gradellm: error: record line-1: line 1 is not valid JSON (")

    newline_id = tmp_path / "id.jsonl"
    newline_id.write_text('{"id": "a\\nb", "txt": "x"}\n')
    result = gradellm("explain", "--input", str(newline_id), "--on-error", "stop")
    assert result.returncode == 2
    assert stderr_lines(result) == ["gradellm: error: record a\\nb: line 1 has no text field 'text'"]


@pytest.mark.parametrize("args, line", [
    (["explain", "--limit", "many", "x"], "gradellm: error: Invalid value for '--limit': "),
    (["render", "--id"], "gradellm: error: Option '--id' requires an argument. (see gradellm render --help)"),
    (["exlpain"], "gradellm: error: No such command 'exlpain'. Did you mean 'explain'? (see gradellm --help)"),
])
def test_usage_errors_are_one_line_naming_the_commands_help(args, line):
    result = gradellm(*args, env={"COLUMNS": "30"})
    assert result.returncode == 2
    lines = stderr_lines(result)
    assert len(lines) == 1 and lines[0].startswith(line)


# 6. A word before the one-time conversion


def test_a_conversion_says_so_once(tmp_path, monkeypatch, capsys):
    from gradellm_cli import models

    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path / "cache"))
    gguf = tmp_path / "Tiny.Q4.gguf"
    gguf.write_bytes(b"GGUF" + bytes(64))
    converted = []

    def fake_conversion(path: Path, folder: Path) -> None:
        converted.append(path)
        (folder / "config.json").write_text("{}")

    monkeypatch.setattr(models, "_write_converted", fake_conversion)
    target = models.convert_gguf(gguf)
    first = capsys.readouterr().err.splitlines()
    assert converted == [gguf] and (target / "config.json").exists()
    assert len(first) == 1
    assert first[0].startswith(f"gradellm: converting Tiny.Q4.gguf once into {target.parent} (about a minute")

    assert models.convert_gguf(gguf) == target  # cached: no conversion, no word
    assert converted == [gguf] and capsys.readouterr().err == ""
