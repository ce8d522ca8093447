"""experiments/paper/pool.py, the paper run's scheduler, against a stand-in sweep: every unit is committed
exactly once, each by a process whose class owns it, while classes are split and restarted.

The stand-in is a tiny `gradellm_cli` package that behaves as the real sweep does where the pool
relies on it: it reads the done logs once at start, works through its class's groups in plan order
(methods inside a group), and commits a unit by appending records, then its done line.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

POOL = Path(__file__).resolve().parents[1] / "pool.py"
METHODS = ["grad-ellm", "attention", "random"]

FAKE_SWEEP = """
import json, os, sys, time
from pathlib import Path
args = sys.argv[1:]
out = Path(args[args.index("--output-dir") + 1])
i, n = map(int, args[args.index("--shard") + 1].split("/"))
with open(out / "pids.log", "a") as handle:
    handle.write(f"{os.getpid()}\\n")
plan = json.loads((out / "manifest.json").read_text())["plan"]
groups = [(m, d, r) for m in plan["models"] for d, info in plan["datasets"].items() for r in info["ids"]]
cost = json.loads((out / "cost.json").read_text())
done = {tuple(json.loads(line)["unit"]) for p in out.glob("done*.jsonl") for line in p.open() if line.endswith("\\n")}
for g, (model, name, rid) in enumerate(groups):
    if g % n != i:
        continue
    for method in plan["methods"]:
        unit = [name, model, method, rid]
        if tuple(unit) in done:
            continue
        time.sleep(cost[g])  # cost 0: a unit that fails at once (the sweep commits its error record)
        line = {"unit": unit, "group": g, "shard": [i, n], "threads": os.environ["OMP_NUM_THREADS"]}
        with open(out / f"heatmaps.shard-{i}-of-{n}.jsonl", "a") as handle:
            handle.write(json.dumps({"id": rid, "method": method}) + "\\n")
        with open(out / f"done.shard-{i}-of-{n}.jsonl", "a") as handle:
            handle.write(json.dumps(line) + "\\n")
"""

FAKE_CLEANUP = """
import sys
from pathlib import Path
class ShardStore:
    def __init__(self, run, shard):
        self.run, self.shard = Path(run), shard
    def resume(self):
        with open(self.run / "cleaned.log", "a") as handle:
            handle.write(f"{self.shard.index}/{self.shard.count}\\n")
"""


def make_code(root: Path) -> Path:
    package = root / "code" / "gradellm_cli"
    (package / "sweep").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text(FAKE_SWEEP)
    (package / "sweep" / "__init__.py").write_text("")
    (package / "sweep" / "sharding.py").write_text(
        "from dataclasses import dataclass\n@dataclass\nclass Shard:\n    index: int\n    count: int\n"
    )
    (package / "sweep" / "store.py").write_text(FAKE_CLEANUP)
    return package.parent


def make_run(root: Path, records: int, cost: list[float], done_before: dict[int, int]) -> tuple[Path, list[tuple]]:
    """A run folder: 2 models x 2 datasets x ``records``; ``done_before`` {group: units} committed by torchrun's shards."""
    run = root / "run"
    run.mkdir()
    datasets = {name: {"task": "x", "ids": [f"{name}-{k}" for k in range(records)]} for name in ("sst2", "imdb")}
    plan = {"models": ["smollm2", "gemma3"], "methods": METHODS, "datasets": datasets}
    (run / "manifest.json").write_text(json.dumps({"plan": plan}))
    (run / "cost.json").write_text(json.dumps(cost))
    groups = [(m, d, r) for m in plan["models"] for d, info in datasets.items() for r in info["ids"]]
    for g, count in done_before.items():
        model, name, rid = groups[g]
        with open(run / f"done.shard-{g % 2}-of-2.jsonl", "a") as handle:
            for method in METHODS[:count]:
                handle.write(json.dumps({"unit": [name, model, method, rid], "group": g, "shard": [g % 2, 2], "threads": "1"}) + "\n")
    return run, [(name, model, method, rid) for model, name, rid in groups for method in METHODS]


def run_pool(root: Path, run: Path) -> subprocess.CompletedProcess:
    code = make_code(root)
    command = [sys.executable, str(POOL), str(run), "--code", str(code), "--python", sys.executable, "--poll", "0.01", "--", "--fake"]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def done_lines(run: Path) -> list[dict]:
    return [json.loads(line) for path in sorted(run.glob("done*.jsonl")) for line in path.read_text().splitlines()]


def test_every_unit_once_by_its_class_while_an_uneven_run_is_split(tmp_path):
    # Shard 0's groups (even) cost 10x shard 1's: shard 1 runs dry early and shard 0's class is split.
    # A unit takes far longer than the pool's look at the done logs (0.01 s), as in the real run
    # (seconds against 1 s), so a stopped process never commits a unit of its next record.
    records = 5
    cost = [0.2 if g % 2 == 0 else 0.02 for g in range(4 * records)]
    run, units = make_run(tmp_path, records, cost, {0: 3, 1: 3, 2: 1})
    result = run_pool(tmp_path, run)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = done_lines(run)
    committed = Counter(tuple(line["unit"]) for line in lines)
    assert set(committed) == set(units)
    assert max(committed.values()) == 1, [u for u, k in committed.items() if k > 1]
    assert all(line["group"] % line["shard"][1] == line["shard"][0] for line in lines)
    assert "splitting --shard 0/2" in result.stdout
    assert any(line["shard"][1] > 2 for line in lines)  # the finer classes did commit work
    cleaned = set((run / "cleaned.log").read_text().split())
    assert {"0/2", "1/2"} <= cleaned  # an earlier pool's files, and every stopped class


def test_the_last_group_restarts_with_two_threads_after_a_commit(tmp_path):
    # Two groups left, one per shard; the heavy one is alone at the end.
    cost = [0.005] * 8
    cost[6] = 0.5
    run, units = make_run(tmp_path, 2, cost, {g: 3 for g in range(8) if g not in (5, 6)})
    result = run_pool(tmp_path, run)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in done_lines(run) if line["group"] == 6]
    assert [line["unit"][2] for line in lines] == METHODS
    assert [line["threads"] for line in lines] == ["1", "2", "2"]
    assert Counter(tuple(line["unit"]) for line in done_lines(run)) == Counter(units)


def test_a_single_group_left_starts_with_two_threads(tmp_path):
    cost = [0.005] * 8
    run, units = make_run(tmp_path, 2, cost, {g: 3 for g in range(8) if g != 3} | {3: 1})
    result = run_pool(tmp_path, run)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [line["threads"] for line in done_lines(run) if line["group"] == 3] == ["1", "2", "2"]
    assert Counter(tuple(line["unit"]) for line in done_lines(run)) == Counter(units)


def test_a_crashing_sweep_ends_the_pool_after_three_failures(tmp_path):
    run, _ = make_run(tmp_path, 2, [0.005] * 8, {})
    code = make_code(tmp_path)
    (code / "gradellm_cli" / "__main__.py").write_text("raise SystemExit(3)")
    command = [sys.executable, str(POOL), str(run), "--code", str(code), "--python", sys.executable, "--poll", "0.01"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert 3 <= result.stdout.count("stopped with work left") <= 4  # both workers' crashes can land in one look
    assert "three failures: ending" in result.stdout
    assert not list(run.glob("done*.jsonl"))


def test_a_stopped_process_cannot_commit_into_a_class_already_started(tmp_path):
    # The split victim (0/2) is on group 0; its next group, 2, fails at once (cost 0: error records in
    # milliseconds), so it commits group 2 before it can be stopped: group 2 must not have been given
    # to the idle worker.
    cost = [0.3 if g % 2 == 0 else 0.01 for g in range(20)]
    cost[2] = 0.0
    run, units = make_run(tmp_path, 5, cost, {})
    result = run_pool(tmp_path, run)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "splitting --shard 0/2" in result.stdout
    assert Counter(tuple(line["unit"]) for line in done_lines(run)) == Counter(units)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as handle:  # a zombie is dead too
        return handle.read().split(")")[-1].split()[0] != "Z"


def test_no_sweep_outlives_a_killed_pool(tmp_path):
    # resume.sh starts a new pool after one ends: an orphaned sweep beside it would run the same records.
    run, _ = make_run(tmp_path, 2, [5.0] * 8, {})
    code = make_code(tmp_path)
    command = [sys.executable, str(POOL), str(run), "--code", str(code), "--python", sys.executable, "--poll", "0.01"]
    pool = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    pids = run / "pids.log"
    for _ in range(3000):  # up to 30 s on a loaded machine
        if pids.exists() and len(pids.read_text().split()) == 2:
            break
        time.sleep(0.01)
    pool.send_signal(signal.SIGKILL)
    pool.wait()
    sweeps = [int(pid) for pid in pids.read_text().split()]
    for _ in range(3000):  # up to 30 s on a loaded machine
        if not any(alive(pid) for pid in sweeps):
            break
        time.sleep(0.01)
    assert not any(alive(pid) for pid in sweeps)
