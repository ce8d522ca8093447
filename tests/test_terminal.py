"""On a real (pseudo-)terminal, the progress bar steps aside: every heatmap header starts its own line.

The explain example of the README, run under a pseudo-terminal with colours; what a terminal would show
is rebuilt from the bytes (carriage returns, cursor-up, erase-line and colour sequences) by a small
emulator, and each heatmap header must sit at the start of a line of that screen.
"""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys

import pytest

pty = pytest.importorskip("pty")

CSI = re.compile(r"\x1b\[([0-9;?]*)([A-Za-z])")


def screen(output: bytes) -> list[str]:
    """The lines a terminal shows after ``output``: text overwrites at the cursor, ``\\r`` goes to column 0,
    ``\\n`` down a line, ``ESC[nA`` up n lines, ``ESC[2K`` erases the line; other sequences change no text."""
    text = output.decode("utf-8", errors="replace")
    lines: list[list[str]] = [[]]
    row = col = position = 0
    while position < len(text):
        match = CSI.match(text, position)
        if match:
            argument, command = match.groups()
            if command == "A":
                row = max(0, row - int(argument or 1))
            elif command == "K" and argument == "2":
                lines[row] = []
            position = match.end()
            continue
        char = text[position]
        position += 1
        if char == "\r":
            col = 0
        elif char == "\n":
            row += 1
            if row == len(lines):
                lines.append([])
        else:
            line = lines[row]
            line.extend(" " * (col - len(line)))
            if col < len(line):
                line[col] = char
            else:
                line.append(char)
            col += 1
    return ["".join(line) for line in lines]


def test_the_screen_emulator_reads_what_a_bar_then_a_header_leave():
    assert screen(b"bar 0/1\r\n\x1b[?25h\r\x1b[1A\x1b[2K\x1b[1mtext-1\x1b[0m x\r\n") == ["text-1 x", ""]
    assert screen(b"bar 0/1text-1 x\r\n") == ["bar 0/1text-1 x", ""]  # a header glued to the bar is seen as such


def run_on_a_terminal(*args: str, timeout: float = 300) -> bytes:
    master, slave = pty.openpty()
    env = {key: value for key, value in os.environ.items() if key != "NO_COLOR"} | {"OMP_NUM_THREADS": "1", "COLUMNS": "100",
                                                                                    "TERM": "xterm-256color"}
    process = subprocess.Popen([sys.executable, "-m", "gradellm_cli", *args], stdin=slave, stdout=slave, stderr=slave, env=env,
                               close_fds=True)
    os.close(slave)
    output = b""
    while True:
        ready, _, _ = select.select([master], [], [], timeout)
        if not ready:
            process.kill()
            break
        try:
            data = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        output += data
    os.close(master)
    assert process.wait(timeout=30) == 0, output[-2000:]
    return output


def test_every_heatmap_header_starts_its_own_line_on_a_terminal():
    output = run_on_a_terminal("explain", "a gorgeous, witty, seductive movie.", "--method", "grad-ellm,saliency")
    lines = screen(output)
    headers = [line for line in lines if "smollm2 grad-ellm target" in line or "smollm2 saliency target" in line]
    assert len(headers) == 2, lines
    assert all(line.startswith("text-1 smollm2 ") for line in headers), headers


def test_evaluate_on_a_terminal_follows_the_json_with_a_table(tmp_path):
    heatmaps = tmp_path / "heatmaps.jsonl"
    run_on_a_terminal("explain", "a gorgeous, witty, seductive movie.", "--method", "random", "--output", str(heatmaps), "--no-show")
    lines = screen(run_on_a_terminal("evaluate", "--heatmaps", str(heatmaps), "--metrics", "soft", "--samples", "1"))
    assert any(line.startswith('{"schema_version"') for line in lines), lines  # the record itself, first
    header = next(i for i, line in enumerate(lines) if "Soft-NS" in line and "Soft-NC" in line)
    assert any("text-1" in line and "random" in line for line in lines[header:]), lines


def test_a_generations_last_step_is_followed_by_its_whole_reply():
    from gradellm_cli.view import continuation_text

    step = {"tokens": ["Q", ":", " The", " sky"], "prompt_length": 2, "target_token": " is", "label_ids": None, "steps": 3}
    assert continuation_text(step | {"step": 2}) == " The sky is"
    assert continuation_text(step | {"step": 1}) is None  # only after the last step
    assert continuation_text(step | {"step": 0, "steps": 1, "label_ids": [5, 6]}) is None  # a classification has no reply
