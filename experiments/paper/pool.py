#!/usr/bin/env python3
"""Run what is left of a sweep on WORKERS one-thread processes that stay busy until the last unit.

    pool.py --code DIR --python PY [--workers 2] RUN_DIR -- SWEEP OPTIONS...

Why: `torchrun --nproc_per_node 2` gives each process a fixed half of the records (group g to shard
g % 2), and the halves are not equal (the long IMDb reviews all fell to shard 0), so one core would
sit idle for hours at the end. Every process here is the same `gradellm sweep SWEEP OPTIONS
--shard i/n` over a *class* of groups (g % n == i), and the classes in flight are always disjoint.
When a worker runs out of classes, the class of a running process is split into finer classes
(mod 2n, 4n, ... until one of them leaves out both the group that process is working on and the
one it would take next): the idle worker starts on those at once, and the running process is
stopped as soon as it has committed its current group, the classes of its two groups queued.
When one group is left and one worker idles, the last process is restarted after its next commit
with 2 threads. Nothing is computed twice, and no unit is committed twice: a stopped process has
only its current group's units left to commit, plus, should its next group fail at once (error
records take milliseconds), that group's; it is the group after those two that is out of reach.

Why the records stay exactly those of one uninterrupted run: the sweep skips every unit committed
in *any* done log of the folder, and readers merge every shard's files (done units only, each
record once). A process is stopped with SIGKILL, which the sweep is built to survive; afterwards
its shard's files are cleaned as a resume would (records of an uncommitted unit cut out), since
that class may never run again. The class files are `*.shard-i-of-n.jsonl`, one set per class.

Standard library only: the sweep itself runs in PY (the run's pinned environment) from DIR (its
pinned code). Stops with exit 0 once every unit of the plan in RUN_DIR/manifest.json is committed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

Cls = tuple[int, int]  # (i, n): the groups g with g % n == i
SHARD_FILE = re.compile(r"(?:heatmaps|metrics|done)\.shard-(\d+)-of-(\d+)\.jsonl")
CLEANUP = """import sys; from pathlib import Path
from gradellm_cli.sweep.sharding import Shard
from gradellm_cli.sweep.store import ShardStore
ShardStore(Path(sys.argv[1]), Shard(int(sys.argv[2]), int(sys.argv[3]))).resume()"""


def die_with_parent() -> None:
    """In a sweep, before it starts: SIGKILL it when pool.py dies, however pool.py dies (even SIGKILL).

    Otherwise resume.sh's next attempt would start a new pool beside an orphaned sweep still running
    the same records, and two processes could commit one unit (Linux's PR_SET_PDEATHSIG).
    """
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG


def log(message: str) -> None:
    print(f"pool.py {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}: {message}", flush=True)


class Plan:
    """The run's groups (a record of a dataset for a model, all methods) in the sweep's order, and what is done."""

    def __init__(self, run: Path):
        self.run = run
        plan = json.loads((run / "manifest.json").read_text())["plan"]
        self.methods = plan["methods"]
        self.groups = [(model, name, rid) for model in plan["models"] for name, info in plan["datasets"].items() for rid in info["ids"]]

    def committed(self) -> set[tuple[str, ...]]:
        """Units in any done log (whole lines only: a torn last line is a unit not yet committed)."""
        done = set()
        for path in self.run.glob("done*.jsonl"):
            with path.open() as handle:
                done.update(tuple(json.loads(line)["unit"]) for line in handle if line.endswith("\n"))
        return done

    def group_done(self, g: int, done: set) -> bool:
        model, name, rid = self.groups[g]
        return all((name, model, method, rid) in done for method in self.methods)

    def pending(self, cls: Cls, done: set) -> list[int]:
        i, n = cls
        return [g for g in range(i, len(self.groups), n) if not self.group_done(g, done)]


def refine(pending: list[int], n: int, apart: tuple[int, ...] = ()) -> list[Cls]:
    """Finer classes (mod 2n, 4n, ...) holding ``pending`` (groups of one class mod n), non-empty ones only.

    ``apart`` given (groups a running process may still reach): refine until some class holds
    pending groups and none of ``apart``; otherwise until two classes are non-empty. Returns []
    when ``pending`` cannot be split that way. Ends: past the largest group every group is alone.
    """
    if not [g for g in pending if g not in apart] or (not apart and len(pending) < 2):
        return []
    m = 2 * n
    while True:
        filled = sorted({g % m for g in pending})
        kept = {g % m for g in apart}
        if (not apart and len(filled) >= 2) or (apart and any(r not in kept for r in filled)):
            return [(r, m) for r in filled]
        m *= 2


@dataclass
class Job:
    cls: Cls
    threads: int
    proc: subprocess.Popen
    stop_after: int | None = None  # a group: SIGKILL once all its units are committed, then queue ``then``
    then: list[Cls] = field(default_factory=list)
    restart_after: int | None = None  # a done-line count: SIGKILL at the next commit, rerun with 2 threads
    killed: bool = False


class Pool:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.run = Path(args.run).resolve()
        self.plan = Plan(self.run)
        self.queue: deque[tuple[Cls, int]] = deque()
        self.jobs: list[Job] = []
        self.failures = 0

    # ---- processes
    def start(self, cls: Cls, threads: int, done: set) -> None:
        i, n = cls
        command = [self.args.python, "-m", "gradellm_cli", "sweep", *self.args.sweep, "--output-dir", str(self.run), "--shard", f"{i}/{n}"]
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        env.pop("RANK", None), env.pop("WORLD_SIZE", None)
        proc = subprocess.Popen(command, cwd=self.args.code, env=env, start_new_session=True, preexec_fn=die_with_parent)
        self.jobs.append(Job(cls, threads, proc))
        left = len(self.plan.pending(cls, done))
        log(f"started --shard {i}/{n} with {threads} thread(s) (pid {proc.pid}; {left} group(s) of it left)")

    def cleanup(self, cls: Cls) -> None:
        """Cut a stopped class's uncommitted records, as the sweep's own resume would."""
        result = subprocess.run([self.args.python, "-c", CLEANUP, str(self.run), str(cls[0]), str(cls[1])], cwd=self.args.code)
        if result.returncode != 0:
            raise SystemExit(f"pool.py: cannot clean the files of shard {cls[0]}/{cls[1]}")

    def done_lines(self, cls: Cls) -> int:
        i, n = cls
        path = self.run / f"done.shard-{i}-of-{n}.jsonl"  # n >= 2: classes start from the halves mod 2
        return path.read_bytes().count(b"\n") if path.exists() else 0

    def kill(self, job: Job, why: str) -> None:
        log(f"stopping --shard {job.cls[0]}/{job.cls[1]}: {why}")
        job.killed = True
        os.killpg(job.proc.pid, signal.SIGKILL)

    # ---- scheduling
    def initial_classes(self, done: set) -> list[Cls]:
        """The two halves (mod 2: torchrun's shards), split further until every worker has a class.

        Never the whole run as one class: an unsharded sweep writes other file names and its report.
        """
        classes = [c for c in ((0, 2), (1, 2)) if self.plan.pending(c, done)]
        while 0 < len(classes) < self.args.workers:
            classes.sort(key=lambda c: -len(self.plan.pending(c, done)))
            finer = refine(self.plan.pending(classes[0], done), classes[0][1])
            if not finer:
                break
            classes[:1] = finer
        return sorted(classes, key=lambda c: -len(self.plan.pending(c, done)))

    def reap(self) -> None:
        """Jobs that ended: queue what each leaves behind (a crash counts as a failure).

        The done logs are read after the exits are seen, so a job's last commit counts before its exit does.
        """
        ended = [j for j in self.jobs if j.proc.poll() is not None]
        done = self.plan.committed() if ended else set()
        for job in ended:
            self.jobs.remove(job)
            self.cleanup(job.cls)
            left = self.plan.pending(job.cls, done)
            log(f"--shard {job.cls[0]}/{job.cls[1]} ended (exit code {job.proc.returncode}); {len(left)} group(s) of it left")
            if job.killed and job.restart_after is not None:
                self.queue.appendleft((job.cls, 2))
            elif job.stop_after is not None:
                self.queue.extendleft((c, 1) for c in reversed(job.then))
            elif left:
                self.failures += 1
                log(f"--shard {job.cls[0]}/{job.cls[1]} stopped with work left (failure {self.failures}; 3 end the pool)")
                self.queue.appendleft((job.cls, job.threads))

    def steer(self, done: set) -> None:
        """Stop a split job once its group is committed, or a job to restart at its next commit."""
        for job in [j for j in self.jobs if not j.killed]:
            if job.stop_after is not None and self.plan.group_done(job.stop_after, done):
                self.kill(job, f"its group {job.stop_after} is committed; the rest of its class is queued")
            elif job.restart_after is not None and self.done_lines(job.cls) > job.restart_after:
                self.kill(job, "it committed a unit: restarting it with 2 threads")

    def share_out(self, done: set) -> None:
        """A worker is idle and nothing is queued: split a running class, or give the last one 2 threads."""
        if any(j.stop_after is not None or j.restart_after is not None for j in self.jobs):
            return
        for job in sorted(self.jobs, key=lambda j: -len(self.plan.pending(j.cls, done))):
            left = self.plan.pending(job.cls, done)
            # The sweep works through its class in plan order: it is on left[0] and goes on to left[1]
            # until it is stopped. Its done list is read at its start, so a unit of left[1] that fails
            # at once (an error record, committed in milliseconds) could be committed before the stop:
            # so left[1] waits too, with left[0], for the process to be gone.
            apart = tuple(left[:2])
            finer = refine(left, job.cls[1], apart)
            if finer:
                m = finer[0][1]
                now = [c for c in finer if c[0] not in {g % m for g in apart}]
                later = [c for c in finer if c not in now]
                job.stop_after, job.then = left[0], later
                self.queue.extend((c, 1) for c in now)
                log(
                    f"splitting --shard {job.cls[0]}/{job.cls[1]}: "
                    + ", ".join(f"{i}/{n}" for i, n in now)
                    + f" start now; it stops once group {left[0]} is committed, then "
                    + ", ".join(f"{i}/{n}" for i, n in later)
                    + " go on"
                )
                return
        if len(self.jobs) == 1 and self.jobs[0].threads == 1 and self.args.workers >= 2:
            job = self.jobs[0]
            job.restart_after = self.done_lines(job.cls)
            log(f"--shard {job.cls[0]}/{job.cls[1]} has one group left: it restarts with 2 threads after its next commit")

    def loop(self) -> int:
        """Schedule until every unit is committed; whatever ends it (an error too), no sweep outlives it."""
        try:
            return self._loop()
        finally:
            for job in self.jobs:
                if job.proc.poll() is None:
                    self.kill(job, "pool.py is ending")
                    job.proc.wait()

    def _loop(self) -> int:
        # classes an earlier pool's processes wrote: cut what they left half-written
        names = (SHARD_FILE.fullmatch(path.name) for path in self.run.iterdir())
        for i, n in sorted({(int(m[1]), int(m[2])) for m in names if m}):
            self.cleanup((i, n))
        classes = self.initial_classes(self.plan.committed())
        threads = 2 if len(classes) == 1 and self.args.workers >= 2 else 1
        self.queue.extend((c, threads) for c in classes)
        while True:
            self.reap()
            done = self.plan.committed()
            self.steer(done)
            if self.failures >= 3:  # the sweeps still running finish (or are stopped as planned); nothing new starts
                self.queue.clear()
                if not self.jobs:
                    log("three failures: ending")
                    return 1
                time.sleep(self.args.poll)
                continue
            while self.queue and len(self.jobs) < self.args.workers:
                cls, threads = self.queue.popleft()
                if self.plan.pending(cls, done):
                    self.start(cls, threads, done)
            if not self.jobs and not self.queue:
                left = self.plan.pending((0, 1), self.plan.committed())
                log("every unit is committed" if not left else f"{len(left)} group(s) left and nothing runs them")
                return 0 if not left else 1
            if len(self.jobs) < self.args.workers and not self.queue:
                self.share_out(done)
            time.sleep(self.args.poll)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="the run folder (manifest.json, done logs)")
    parser.add_argument("--code", required=True, help="folder to run `python -m gradellm_cli` in (the pinned code)")
    parser.add_argument("--python", required=True, help="the run environment's python")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between looks at the done logs")
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:cut])
    args.sweep = argv[cut + 1 :]  # the sweep's options, without --output-dir or --shard
    pool = Pool(args)

    def stop(signum, frame):  # resume.sh killed: loop()'s finally takes the sweeps down too
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    return pool.loop()


if __name__ == "__main__":
    sys.exit(main())
