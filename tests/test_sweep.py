"""``gradellm sweep`` end to end in subprocesses (SIGKILL needs a real process), kept cheap:
SmolLM2, two fast methods, two short SST-2 records, raw Soft-NS/NC with one sample."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from gradellm_cli.errors import BadInput
from gradellm_cli.sweep import read_run
from gradellm_cli.sweep.plan import parse_limits
from gradellm_cli.sweep.sharding import Shard, parse_shard, process_device

SMALL = ["--models", "smollm2", "--datasets", "sst2", "--methods", "random,attention", "--limit", "2"]
FAST = ["--metrics", "soft", "--samples", "1", "--device", "cpu"]
UNITS = 4  # 2 records x 2 methods
TIMING = ("seconds",)


def _env() -> dict[str, str]:
    """No launcher variables (they would pick a shard); one thread, which is faster on a busy two-core machine."""
    env = {key: value for key, value in os.environ.items() if key not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    return env | {"OMP_NUM_THREADS": "1"}


def _sweep(run_dir: Path, *extra: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = _env()
    command = [sys.executable, "-m", "gradellm_cli", "sweep", *SMALL, *FAST, "--output-dir", str(run_dir), *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)


def _comparable(run_dir: Path) -> tuple[list[bytes], list[bytes]]:
    """The run's merged records, timing fields dropped, as sorted canonical JSON."""

    def canon(records):
        return sorted(orjson.dumps({k: v for k, v in r.items() if k not in TIMING}, option=orjson.OPT_SORT_KEYS) for r in records)

    heatmaps, metrics = read_run(run_dir)
    return canon(heatmaps), canon(metrics)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted, unsharded run: what every other run must end up with."""
    run_dir = tmp_path_factory.mktemp("reference")
    result = _sweep(run_dir)
    assert result.returncode == 0, result.stderr
    return run_dir


def test_uninterrupted_run_writes_every_unit_once(reference):
    heatmaps, metrics = read_run(reference)
    assert len(heatmaps) == len(metrics) == UNITS
    assert {(r["dataset"], r["method"]) for r in metrics} == {("sst2", "random"), ("sst2", "attention")}
    manifest = orjson.loads((reference / "manifest.json").read_bytes())
    assert manifest["options"]["metrics"]["samples"] == 1 and manifest["plan"]["units"] == UNITS
    assert {"gradellm", "torch", "transformers"} <= set(manifest["versions"])
    again = _sweep(reference)  # the same configuration: resumes, finds nothing to do
    assert again.returncode == 0 and f"0 unit(s) run, {UNITS} already done" in again.stderr


def test_sigkill_mid_run_then_rerun_gives_exactly_the_uninterrupted_records(tmp_path, reference):
    run_dir = tmp_path / "killed"
    command = [sys.executable, "-m", "gradellm_cli", "sweep", *SMALL, *FAST, "--output-dir", str(run_dir)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env())
    done_log = run_dir / "done.jsonl"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and process.poll() is None:
        if done_log.exists() and done_log.read_bytes().count(b"\n") >= 1:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the sweep finished before it could be killed"
    # Make the kill land mid-unit for sure: un-commit the last done unit (its records stay behind)
    # and leave a torn half line, as a kill inside a write would.
    lines = done_log.read_bytes().splitlines(keepends=True)
    done_log.write_bytes(b"".join(lines[:-1]) + lines[-1][:10])
    with open(run_dir / "metrics.jsonl", "ab") as handle:
        handle.write(b'{"dataset": "sst2", "kind": "met')
    result = _sweep(run_dir)
    assert result.returncode == 0, result.stderr
    assert f"{UNITS - len(lines) + 1} unit(s) run" in result.stderr
    assert _comparable(run_dir) == _comparable(reference)
    assert (run_dir / "heatmaps.jsonl").read_bytes().count(b"\n") == UNITS  # the files themselves hold no leftovers


def test_two_shards_into_one_folder_union_equals_the_unsharded_run(tmp_path, reference):
    run_dir = tmp_path / "sharded"
    for shard in ("0/2", "1/2"):
        result = _sweep(run_dir, "--shard", shard)
        assert result.returncode == 0, result.stderr
        assert f"render --table {run_dir} --table-out {run_dir}` once every shard is done" in result.stderr  # no half-merged tables
        assert not (run_dir / "table1.md").exists()
    assert (run_dir / "heatmaps.shard-0-of-2.jsonl").exists() and (run_dir / "metrics.shard-1-of-2.jsonl").exists()
    assert _comparable(run_dir) == _comparable(reference)


def test_other_configuration_in_the_same_folder_is_a_one_line_error(reference):
    before = (reference / "metrics.jsonl").read_bytes()
    result = _sweep(reference, "--samples", "2")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "different configuration" in result.stderr and "options.metrics.samples" in result.stderr
    assert (reference / "metrics.jsonl").read_bytes() == before  # nothing mixed in


def test_bad_input_is_a_one_line_error(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    texts = tmp_path / "texts.jsonl"
    texts.write_text('{"text": "fine"}\n')
    cases = [
        (["--datasets", "nope"], 3, "unknown dataset 'nope'"),
        (["--datasets", str(texts), "--text-field", "body"], 2, "unknown field 'body'"),
        (["--datasets", str(empty)], 2, "is empty"),
    ]
    for extra, code, message in cases:
        result = _sweep(tmp_path / "run", *extra)
        assert result.returncode == code, result.stderr
        assert message in result.stderr and result.stderr.strip().count("\n") == 0, result.stderr
    assert not (tmp_path / "run" / "heatmaps.jsonl").exists()


def test_limits_and_shards_parse():
    tasks = {"sst2": "sentiment", "tellmewhy": "generate", "wikibio": "generate"}
    names = tuple(tasks)
    assert parse_limits("20,tellmewhy=5", 10, names, tasks) == {"sst2": 20, "tellmewhy": 5, "wikibio": 10}
    assert parse_limits(None, None, names, tasks) == {"sst2": None, "tellmewhy": None, "wikibio": None}
    with pytest.raises(BadInput):
        parse_limits("imdb=3", None, names, tasks)
    assert parse_shard("1/4") == Shard(1, 4)
    assert parse_shard(None, {"RANK": "2", "WORLD_SIZE": "3"}) == Shard(2, 3)
    assert parse_shard(None, {}) == Shard(0, 1)
    with pytest.raises(BadInput):
        parse_shard("4/4")
    assert parse_shard("1/4", {"WORLD_SIZE": "1"}) == Shard(1, 4)
    with pytest.raises(BadInput, match="gives every process the same shard"):  # --shard under torchrun
        parse_shard("0/2", {"RANK": "1", "WORLD_SIZE": "2"})


def test_a_device_map_is_refused_under_a_multi_process_launch():
    """map:auto spreads one model over every GPU; several processes would each load a copy there."""
    with pytest.raises(BadInput, match="run it as one process"):
        process_device("map:auto", {"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0"})
    assert process_device("map:auto", {}) == "map:auto"
    assert process_device("cpu", {"WORLD_SIZE": "2", "LOCAL_RANK": "1"}) == "cpu"


def _records(dataset: str, method: str, record_id: str, steps: list[int]) -> tuple[list[dict], list[dict]]:
    """Fake heatmap and metric records of one generation unit, with its sequence record (step -1)."""
    base = {"dataset": dataset, "model": "m", "method": method, "id": record_id}
    heatmaps = [base | {"kind": "heatmap", "step": step} for step in steps]
    metrics = [base | {"kind": "metric", "step": step} for step in [*steps[::5], -1]]
    return heatmaps, metrics


def test_resume_cuts_a_unit_written_but_not_committed(tmp_path):
    from gradellm_cli.sweep.store import ShardStore

    store = ShardStore(tmp_path, Shard(0, 1))
    store.open()
    store.commit(("d", "m", "a", "1"), *_records("d", "a", "1", list(range(6))))
    heatmaps, metrics = _records("d", "b", "1", list(range(6)))
    store._writers["heatmaps"].write(heatmaps)  # killed after the metrics, before the done line
    store._writers["metrics"].write(metrics)
    store.close()
    with open(tmp_path / "done.jsonl", "ab") as handle:
        handle.write(b'{"unit": ["d", "m", "b"')  # a torn done line does not count
    assert {r["method"] for r in read_run(tmp_path)[0]} == {"a"}  # readers ignore the uncommitted unit
    inode = (tmp_path / "heatmaps.jsonl").stat().st_ino
    store.resume()
    assert (tmp_path / "heatmaps.jsonl").stat().st_ino == inode  # the tail cut in place, not a copy of the file
    assert {r["method"] for r in read_run(tmp_path)[1]} == {"a"}
    assert (tmp_path / "metrics.jsonl").read_bytes().count(b"\n") == 3  # steps 0 and 5, and -1
    assert (tmp_path / "heatmaps.jsonl").read_bytes().count(b"\n") == 6


def test_resume_cuts_uncommitted_records_that_are_not_a_tail(tmp_path):
    """Records not at the end (a file edited by hand) are cut by a rewrite; the committed ones stay in order."""
    from gradellm_cli.sweep.store import ShardStore

    store = ShardStore(tmp_path, Shard(0, 1))
    store.open()
    store._writers["heatmaps"].write(_records("d", "b", "1", [0])[0])  # never committed
    store.commit(("d", "m", "a", "1"), *_records("d", "a", "1", [0, 1]))
    store.close()
    store.resume()
    lines = (tmp_path / "heatmaps.jsonl").read_bytes().splitlines()
    assert [(orjson.loads(line)["method"], orjson.loads(line)["step"]) for line in lines] == [("a", 0), ("a", 1)]


def test_a_unit_committed_by_two_shard_layouts_reads_back_once(tmp_path):
    from gradellm_cli.sweep.store import ShardStore

    for shard in (Shard(0, 1), Shard(1, 2)):
        store = ShardStore(tmp_path, shard)
        store.open()
        store.commit(("d", "m", "a", "1"), *_records("d", "a", "1", [0]))
        store.close()
    heatmaps, metrics = read_run(tmp_path)
    assert len(heatmaps) == 1 and len(metrics) == 2


def test_a_unit_killed_under_one_shard_count_and_committed_under_another_reads_back_committed(tmp_path):
    """Resumed with another shard count, a unit cut off half-way under the old count keeps its
    uncommitted records in the old layout's files (resume cleans only its own shard's files); the
    committed attempt's records are the ones that count, even where the old file sorts first."""
    from gradellm_cli.sweep.store import ShardStore

    killed = ShardStore(tmp_path, Shard(1, 2))
    killed.open()
    heatmaps, metrics = _records("d", "a", "1", [0])
    killed._writers["heatmaps"].write([r | {"attempt": "killed"} for r in heatmaps])  # no done line
    killed._writers["metrics"].write([r | {"attempt": "killed", "kind": "error"} for r in metrics])
    killed.close()
    committed = ShardStore(tmp_path, Shard(1, 3))
    committed.open()
    committed.commit(("d", "m", "a", "1"), *_records("d", "a", "1", [0]))
    committed.close()
    heatmaps, metrics = read_run(tmp_path)
    assert [r.get("attempt") for r in heatmaps] == [None] and [(r["kind"], r.get("attempt")) for r in metrics] == [("metric", None)] * 2


def test_progress_rate_and_time_left_average_this_processs_units():
    """Rate over the units run since start (resumed ones excluded); time left = remaining / rate."""
    from types import SimpleNamespace

    from gradellm_cli.progress import clock, run_rate, time_left

    task = SimpleNamespace(completed=10, total=30, elapsed=600.0, fields={"resumed": 6})
    assert run_rate(task) == pytest.approx(4 / 600)
    assert time_left(task) == pytest.approx(20 * 600 / 4)
    assert clock(time_left(task)) == "0:50:00"
    assert run_rate(SimpleNamespace(completed=6, total=30, elapsed=600.0, fields={"resumed": 6})) is None
    assert time_left(SimpleNamespace(completed=6, total=30, elapsed=None, fields={"resumed": 6})) is None


def test_a_second_process_on_the_same_shard_is_refused(tmp_path):
    """E.g. a batch job requeued while its first copy still runs."""
    from filelock import FileLock

    from gradellm_cli.locks import lock_path

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with FileLock(str(lock_path(run_dir / "done.shard-0-of-2.jsonl"))):
        result = _sweep(run_dir, "--shard", "0/2")
    assert result.returncode == 2, result.stderr
    assert "another gradellm process is writing shard 0/2 of" in result.stderr and result.stderr.strip().count("\n") == 0
    assert not list(run_dir.glob("*.jsonl"))


def test_results_written_to_the_terminal_take_the_bar_off_it_first(monkeypatch):
    """On a terminal the bar is stopped (erased) before a result is written to stdout and drawn again
    after; in a pipe nothing is touched."""
    from gradellm_cli import progress

    calls = []

    class Bar:
        def stop(self):
            calls.append("stop")

        def start(self):
            calls.append("start")

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(progress, "_ACTIVE", [Bar()])
    monkeypatch.setattr(sys, "stdout", Terminal())
    with progress.paused():
        calls.append("write")
    assert calls == ["stop", "write", "start"]
    calls.clear()
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    with progress.paused():
        calls.append("write")
    assert calls == ["write"]
