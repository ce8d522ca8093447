"""Continuations, chats, contrasts and the aggregated views through the command line, end to end.

Subprocesses like the other CLI tests; the bad-input cases stop before a model loads, so they are quick.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from gradellm_cli.units import aggregate

ROOT = Path(__file__).resolve().parents[1]
ENV = {key: value for key, value in os.environ.items() if key not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")} | {"OMP_NUM_THREADS": "1"}
CHATS = [
    {"id": "chat-1", "messages": [
        {"role": "system", "content": "You answer in one short sentence."},
        {"role": "user", "content": "Which city is the capital of France? Answer briefly."},
        {"role": "assistant", "content": "Paris is the capital."},
    ]},
    {"id": "bad-role", "messages": [{"role": "wizard", "content": "hi"}]},
]


def gradellm(*args: str, stdin: bytes | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "gradellm_cli", *args]
    return subprocess.run(command, input=stdin, capture_output=True, cwd=ROOT, timeout=timeout, env=ENV)


def lines(data: bytes) -> list[dict]:
    return [orjson.loads(line) for line in data.splitlines() if line.strip()]


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(record) + b"\n" for record in records))
    return path


def test_continuation_piped_into_evaluate_gives_step_and_sequence_records():
    explained = gradellm("explain", "Why is the sea salty?", "--continuation", "Rivers carry salt into it, and the sun dries it.",
                         "--output", "-")
    assert explained.returncode == 0, explained.stderr.decode()
    heatmaps = lines(explained.stdout)
    assert len(heatmaps) >= 10 and {r["target_source"] for r in heatmaps} == {"given"} and heatmaps[0]["task"] == "generate"
    evaluated = gradellm("evaluate", "--heatmaps", "-", "--metrics", "soft", "--samples", "1", stdin=explained.stdout)
    assert evaluated.returncode == 0, evaluated.stderr.decode()
    metrics = lines(evaluated.stdout)
    steps = [r["step"] for r in metrics if r.get("level") == "token"]
    assert steps == list(range(0, len(heatmaps), 5))
    (sequence,) = [r for r in metrics if r.get("level") == "sequence"]
    assert sequence["step"] == -1 and sequence["steps_evaluated"] == steps


def test_chat_file_source_roles_and_render_by_message(tmp_path):
    chats = write_jsonl(tmp_path / "chats.jsonl", CHATS)
    out = tmp_path / "h.jsonl"
    result = gradellm("explain", "--input", str(chats), "--source-roles", "system,user", "--output", str(out), "--no-show")
    assert result.returncode == 5, result.stderr.decode()  # the bad record was skipped, the run finished
    err = result.stderr.decode()
    assert "record bad-role" in err and "unknown role 'wizard'" in err and "Traceback" not in err
    records = lines(out.read_bytes())
    assert records and {r["id"] for r in records} == {"chat-1"} and records[0]["config"]["source_roles"] == ["system", "user"]
    shown = gradellm("render", str(out), "--by", "message", "--reduce", "sum")
    assert shown.returncode == 0, shown.stderr.decode()
    text = shown.stdout.decode()
    assert "[system] You answer in one short sentence." in text and "[user] Which city" in text
    first = records[0]
    units = aggregate(first, by="message")
    for unit, role in zip(units, ("system", "user"), strict=True):
        assert unit.label == role
        assert f"[{unit.weight:.2f}]" in text
    sentences = gradellm("render", str(out), "--by", "sentence")
    shown_sentences = sentences.stdout.decode()
    assert sentences.returncode == 0 and "France?[" in shown_sentences and "Answer briefly.[" in shown_sentences
    html = tmp_path / "page.html"
    assert gradellm("render", str(out), "--by", "word", "--html", str(html)).returncode == 0
    assert "by word (sum)" in html.read_text()


def test_sweep_over_a_data_file_with_a_continuation_field(tmp_path):
    data = write_jsonl(tmp_path / "answers.jsonl", [
        {"id": "a1", "text": "Why do leaves turn red?", "continuation": "Because the green fades away."},
        {"id": "a2", "text": "Name a planet.", "continuation": "Mars."},
    ])
    run = tmp_path / "run"
    result = gradellm("sweep", "--models", "smollm2", "--datasets", str(data), "--methods", "grad-ellm", "--metrics", "soft",
                      "--samples", "1", "--device", "cpu", "--output-dir", str(run))
    assert result.returncode == 0, result.stderr.decode()
    from gradellm_cli.sweep import read_run

    heatmaps, metrics = read_run(run)
    assert {r["target_source"] for r in heatmaps} == {"given"} and {r["task"] for r in heatmaps} == {"generate"}
    assert sum(r["id"] == "a2" for r in heatmaps) == 2  # "Mars." is two tokens: two steps
    assert {(r["id"], r["step"]) for r in metrics if r["kind"] == "metric"} >= {("a1", -1), ("a2", -1), ("a1", 0), ("a2", 0)}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["explain", "hi", "--continuation", ""], "--continuation is empty"),
        (["explain", "hi", "--continuation", "x", "--task", "sentiment"], "needs a generation task"),
        (["explain", "--input", "-", "--continuation", "x"], "goes with a TEXT argument"),
        (["explain", "hi", "--source-roles", "wizard"], "--source-roles 'wizard'"),
        (["explain", "hi", "--contrast", " "], "--contrast is empty"),
        (["render", "x.jsonl", "--by", "paragraph"], "--by takes token, word, sentence, message"),
        (["render", "x.jsonl", "--reduce", "mean"], "--reduce takes sum or max"),
        (["render", "x.jsonl", "--words", "--by", "sentence"], "--words means --by word --reduce max"),
    ],
)
def test_bad_options_fail_before_the_model_loads(args, message):
    result = gradellm(*args, "--output", "-") if args[0] == "explain" else gradellm(*args)
    err = result.stderr.decode().strip()
    assert result.returncode == 2, err
    assert message in err and "\n" not in err and "Traceback" not in err


def test_a_bad_first_chat_stops_before_the_model_loads(tmp_path):
    chats = write_jsonl(tmp_path / "chats.jsonl", [CHATS[1], CHATS[0]])
    result = gradellm("explain", "--input", str(chats), "--on-error", "stop", "--model", "no-such-model", "--output", "-")
    err = result.stderr.decode().strip()
    assert result.returncode == 2, err  # the record's error, not the unknown model's (which loading would report)
    assert "record bad-role" in err and "unknown role" in err and "\n" not in err
