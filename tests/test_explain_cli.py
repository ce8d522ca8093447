"""The explain command end to end: records, bad input as one-line errors, skipping, resuming.

The CLI runs in-process through ``main()`` (the same entry point as the console script), with the
model cached by ``Explainer`` per process, so each case costs a forward and a backward pass only.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from gradellm_cli.explain import ExplainSettings

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gradellm_cli", *args],
        input=stdin,
        capture_output=True,
        cwd=ROOT,
        timeout=600,
    )


def read_records(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def test_text_argument_writes_a_complete_heatmap_record(tmp_path):
    out = tmp_path / "h.jsonl"
    result = run_cli("explain", "a gorgeous, witty, seductive movie.", "--output", str(out))
    assert result.returncode == 0, result.stderr.decode()
    (record,) = read_records(out)
    for field in ("schema_version", "id", "model", "method", "config", "step", "input_ids", "tokens", "source_mask",
                  "target_id", "target_token", "target_logit", "target_prob", "scores", "seconds"):
        assert field in record
    assert record["schema_version"] == 1 and record["method"] == "grad-ellm"
    assert len(record["scores"]) == len(record["input_ids"]) == len(record["tokens"]) == len(record["source_mask"])
    assert record["target_token"] in ("Positive", "Negative")
    source = "".join(t for t, s in zip(record["tokens"], record["source_mask"]) if s)
    assert source.strip() == "a gorgeous, witty, seductive movie."
    assert "gorgeous" in result.stdout.decode()  # the terminal heatmap


def test_jsonl_with_a_bad_line_writes_every_good_record_and_resumes(tmp_path):
    data = tmp_path / "in.jsonl"
    data.write_text(
        '{"id": "a", "text": "a fine film"}\n'
        "{not json\n"
        '{"id": "b", "text": ""}\n'
        '{"id": "c", "text": "dull and long"}\n'
    )
    out = tmp_path / "out.jsonl"
    result = run_cli("explain", "--input", str(data), "--output", str(out), "--no-show")
    assert result.returncode == 5
    errors = result.stderr.decode().strip().splitlines()
    assert any("line-2" in e and "not valid JSON" in e for e in errors)
    assert any("record b" in e and "empty" in e for e in errors)
    assert "Traceback" not in result.stderr.decode()
    assert [r["id"] for r in read_records(out)] == ["a", "c"]

    # A rerun resumes: nothing duplicated, nothing lost.
    again = run_cli("explain", "--input", str(data), "--output", str(out), "--no-show")
    assert again.returncode == 5
    assert [r["id"] for r in read_records(out)] == ["a", "c"]
    assert "2 input(s) already in" in again.stderr.decode()  # a rerun says what it did not redo

    # Stop mode ends at the first bad record, with a one-line error.
    stop = run_cli("explain", "--input", str(data), "--output", str(tmp_path / "o2.jsonl"), "--on-error", "stop")
    assert stop.returncode == 2
    assert stop.stderr.decode().strip().count("\n") == 0


def test_resume_trims_a_partial_last_line_and_refuses_other_options(tmp_path):
    data = tmp_path / "in.jsonl"
    data.write_text('{"id": "a", "text": "a fine film"}\n{"id": "b", "text": "dull"}\n')
    out = tmp_path / "out.jsonl"
    assert run_cli("explain", "--input", str(data), "--output", str(out), "--no-show").returncode == 0
    complete = out.read_bytes()
    first_line = complete.splitlines(keepends=True)[0]
    out.write_bytes(first_line + complete.splitlines(keepends=True)[1][:50])  # killed mid-write
    assert run_cli("explain", "--input", str(data), "--output", str(out), "--no-show").returncode == 0
    records = read_records(out)
    assert [r["id"] for r in records] == ["a", "b"]
    assert records[1]["scores"] == orjson.loads(complete.splitlines()[1])["scores"]

    other = run_cli("explain", "--input", str(data), "--output", str(out), "--layers", "last:2", "--no-show")
    assert other.returncode == 2 and "made with other settings (layers is 'all' there, 'last:2' now)" in other.stderr.decode()


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["explain", ""], 2, "empty"),
        (["explain", "hi", "--model", "no-such-model"], 3, "unknown model"),
        (["explain", "hi", "--task", "poetry"], 3, "unknown task"),
        (["explain", "hi", "--method", "magic"], 3, "unknown method"),
        (["explain", "hi", "--target", "Maybe so"], 2, "not one"),
        (["explain", "--input", "/no/such/file.jsonl"], 3, "does not exist"),
        (["explain", "hi", "--layers", "99"], 2, "does not exist"),
        (["explain", "hi", "--bogus"], 2, "No such option: --bogus"),
        (["explain", "hi", "--ig-steps", "many"], 2, "Invalid value for '--ig-steps'"),
        (["no-such-command"], 2, "No such command"),
    ],
)
def test_bad_input_is_one_line_and_an_exit_code(args, code, message):
    result = run_cli(*args, "--output", "-")
    err = result.stderr.decode().strip()
    assert result.returncode == code, err
    assert message in err and "\n" not in err and "Traceback" not in err


def _sigint_as_on_a_terminal() -> None:
    """For the child: SIGINT at its default, as a terminal's Ctrl-C finds it. A shell starts background
    jobs with SIGINT ignored, and Python then never raises KeyboardInterrupt: a test run from such a
    job would otherwise see no interruption at all."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_is_one_line_exit_130_and_a_rerun_completes_without_duplicates(tmp_path):
    """SIGINT mid-run (as Ctrl-C sends it): whole records kept, one line, exit 130; the rerun resumes."""
    out = tmp_path / "h.jsonl"
    records = 12  # SIGINT lands within 0.05 s of the second record, so 2 or 3 are kept and the rerun is short
    args = ["explain", "--dataset", "sst2", "--limit", str(records), "--output", str(out), "--no-show"]
    process = subprocess.Popen([sys.executable, "-m", "gradellm_cli", *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               preexec_fn=_sigint_as_on_a_terminal)
    deadline = time.monotonic() + 300
    while not (out.exists() and out.read_bytes().count(b"\n") >= 2) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    err = process.communicate(timeout=120)[1].decode()
    assert process.returncode == 130, err
    assert err.strip().splitlines()[-1].startswith("gradellm: interrupted") and "Traceback" not in err
    kept = [r["id"] for r in read_records(out)]  # every line parses: nothing half-written
    assert 2 <= len(kept) < records
    again = run_cli(*args)
    assert again.returncode == 0, again.stderr.decode()
    ids = [r["id"] for r in read_records(out)]
    assert len(ids) == len(set(ids)) == records and ids[: len(kept)] == kept


def test_a_ctrl_c_that_a_library_turns_into_another_error_still_exits_130():
    """transformers' lazy imports report a Ctrl-C that lands in them as a ModuleNotFoundError; the CLI
    remembers the SIGINT and reports the interruption, not an internal error."""
    script = (
        "import os, signal, sys, time\n"
        "import gradellm_cli.commands.methods as commands\n"
        "def methods():\n"
        "    try:\n"
        "        os.kill(os.getpid(), signal.SIGINT)\n"
        "        time.sleep(30)\n"
        "    except KeyboardInterrupt:\n"
        "        raise ModuleNotFoundError(\"Could not import module 'LlamaConfig'\") from None\n"
        "commands.methods = methods\n"
        "sys.argv = ['gradellm', 'methods']\n"
        "from gradellm_cli.entry import main\n"
        "main()\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, cwd=ROOT, timeout=300, preexec_fn=_sigint_as_on_a_terminal)
    err = result.stderr.decode().strip()
    assert result.returncode == 130, err
    assert err.startswith("gradellm: interrupted") and "\n" not in err


def test_input_longer_than_the_context_is_refused(smollm2):
    from gradellm_cli.errors import BadInput

    smollm2.context_length, saved = 64, smollm2.context_length
    try:
        with pytest.raises(BadInput, match="longer than the model's context"):
            smollm2.prepare("long", {"text": "word " * 100}, ExplainSettings())
    finally:
        smollm2.context_length = saved


def test_stdin_to_stdout_pipe():
    result = run_cli("explain", "--input", "-", "--output", "-", stdin=b'{"id": "p", "text": "great"}\n')
    assert result.returncode == 0, result.stderr.decode()
    (record,) = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert record["id"] == "p"


def test_generation_records_every_step_with_its_prefix(smollm2):
    settings = ExplainSettings(task="generate", max_new_tokens=4)
    records = smollm2.explain("g", {"text": "Name a colour."}, settings)
    assert [r["step"] for r in records] == list(range(len(records)))
    prompt = records[0]["prompt_length"]
    for r in records:
        assert len(r["input_ids"]) == prompt + r["step"]
        assert r["scores"][-1] >= 0 and len(r["scores"]) == len(r["input_ids"])
    for earlier, later in zip(records, records[1:]):
        assert later["input_ids"][:-1] == earlier["input_ids"] and later["input_ids"][-1] == earlier["target_id"]


def test_resume_cuts_a_generation_whose_write_was_cut_short(tmp_path):
    """SIGKILL can stop a large write part-way, leaving whole lines of only the first steps: those
    steps are cut and the pair explained again, instead of the missing steps being lost for good."""
    from types import SimpleNamespace

    from gradellm_cli.pipelines.explaining import resume_pairs as _resume

    config = {"method": "grad-ellm"}

    def heatmap(record_id, step, steps):
        return {"kind": "heatmap", "id": record_id, "model": "m", "method": "grad-ellm", "config": config, "step": step, "steps": steps}

    complete = [heatmap("done", step, 3) for step in range(3)] + [heatmap("classified", 0, 1)]
    cut = [heatmap("cut", 0, 3), heatmap("cut", 1, 3)]
    error = {"kind": "error", "id": "bad", "error": "empty text"}
    out = tmp_path / "out.jsonl"
    out.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in [*complete, error, *cut]))
    explainer = SimpleNamespace(model_name="m", method_config=lambda settings, name, *record_facts: config)
    settings = ExplainSettings(methods=["grad-ellm"])
    assert _resume(str(out), False, explainer, settings) == {("done", "grad-ellm"), ("classified", "grad-ellm")}
    assert read_records(out) == [*complete, error]  # the cut pair's steps are gone; everything else kept
