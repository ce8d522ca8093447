#!/usr/bin/env bash
# Resume the paper-scale sweep into this folder: every unit already in a done log is skipped,
# a unit cut off half-way is rerun, so the records end up exactly those of one uninterrupted run.
#
#   setsid nohup experiments/paper/resume.sh &    # from any folder; stops when all units are done
#
# Output goes to $LOG (default .cache/paper-run.log); one resume.sh at a time (a lock).
# NPROC processes of one thread each (default 2: on 2 cores, 1.35x the units per hour of one
# process with 2 threads), started and kept busy by pool.py: each runs the sweep as `--shard i/n`
# over a class of records, and when one runs dry another's class is split, so both cores work to
# the end (torchrun's two fixed halves were uneven: the long IMDb reviews all fell to shard 0). The
# last record left runs with 2 threads. The sweep skips units committed in any shard's done log, so
# the records are those of one uninterrupted run whatever the split. The run's
# manifest.json refuses to resume on other library or Python versions, so the environment is
# rebuilt from requirements.txt in $VENV (default .venv-paper) with $PYTHON (default python3),
# which must be the manifest's Python. requirements.txt pins the CPU build torch==2.13.0+cpu, which
# pip finds on these machines' local index; elsewhere add PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu.
#
# The code is pinned too: the sweep runs from a git worktree of CODE_COMMIT in $CODE (default
# .cache/paper-code), not from the working tree, so that main can move on (new features, a new
# gradellm.__version__) while this run finishes with the code its first records came from.
set -uo pipefail
cd "$(dirname "$0")/../.."
RUN=runs/paper               # the records
HERE=experiments/paper       # these scripts, the environment they pin and the timeline
VENV=${VENV:-.venv-paper}
PYTHON=${PYTHON:-python3}
CODE=${CODE:-.cache/paper-code}
CODE_COMMIT=beb9c3819da8b2e8fbbbe87953babcd82a023b02  # gradellm 0.1.0, the code of every record here
mkdir -p .cache
exec 9>.cache/paper-run.lock
flock -n 9 || { echo "resume.sh: another resume.sh is running (lock .cache/paper-run.lock)" >&2; exit 1; }
exec >>"${LOG:-.cache/paper-run.log}" 2>&1
echo "resume.sh: started $(date -u +%FT%TZ)"
want=$("$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["versions"]["python"])' "$RUN/manifest.json") \
    || { echo "resume.sh: cannot read $RUN/manifest.json with $PYTHON"; exit 1; }
have=$("$PYTHON" -c 'import platform; print(platform.python_version())')
[ "$want" = "$have" ] || { echo "resume.sh: the run was made with Python $want, $PYTHON is $have: set PYTHON"; exit 1; }
if [ ! -e "$CODE" ]; then
    git worktree prune
    git worktree add -q --detach "$CODE" "$CODE_COMMIT" \
        || { echo "resume.sh: cannot check out $CODE_COMMIT into $CODE"; exit 1; }
fi
[ "$(git -C "$CODE" rev-parse HEAD)" = "$CODE_COMMIT" ] && [ -z "$(git -C "$CODE" status --porcelain)" ] \
    || { echo "resume.sh: $CODE is not a clean checkout of $CODE_COMMIT; remove it (git worktree remove --force $CODE)"; exit 1; }
# .complete holds the code commit the venv was built for: never delete a folder this script did not finish
if [ -e "$VENV" ] && [ "$(cat "$VENV/.complete" 2>/dev/null)" != "$CODE_COMMIT" ]; then
    echo "resume.sh: $VENV was not built to the end by this resume.sh for $CODE_COMMIT; remove it or set VENV"
    exit 1
fi
if [ ! -e "$VENV" ]; then
    "$PYTHON" -m venv "$VENV" \
        && "$VENV/bin/pip" install -q --no-deps -r "$HERE/requirements.txt" \
        && "$VENV/bin/pip" install -q --no-deps -e "$CODE" \
        && echo "$CODE_COMMIT" > "$VENV/.complete" \
        || { echo "resume.sh: cannot build $VENV from $HERE/requirements.txt"; exit 1; }
fi
out=$(realpath "$RUN") python="$(realpath "$VENV")/bin/python"  # not realpath of the file: a symlink out of the venv
export OMP_NUM_THREADS=1
# De-quantise both GGUF files once, in one process, before pool.py starts two: the pinned code's
# cache has no lock (main's has), so two processes converting the same file at once can trip over
# each other. A no-op when the cache already holds them.
(cd "$CODE" && "$python" -c 'import sys; from pathlib import Path
from gradellm_cli.models import convert_gguf, resolve_model
for alias in sys.argv[1:]:
    print("resume.sh: model cache ready:", convert_gguf(Path(resolve_model(alias).location)))' smollm2 gemma3) \
    || echo "resume.sh: could not prepare the model cache; the sweep will convert the models itself"
for attempt in 1 2 3; do  # pool.py ends after three crashed sweeps; the rerun resumes
    # timeline.log: the wall time of a run spread over many machines' loans (see snapshot.sh), and the CPU
    # each segment's units ran on (float32 kernels differ between CPU models; see README.md); nproc is asked
    # without the OMP_NUM_THREADS=1 above, which it would report instead of the cores
    cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1 | tr -s ' ' '_')
    echo "start $(date -u +%FT%TZ) $(date +%s) cpu=${cpu:-unknown} nproc=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)" >> "$HERE/timeline.log"
    # run from $CODE: `-m gradellm_cli` imports the package of the current directory first
    "$PYTHON" "$HERE/pool.py" "$out" --code "$CODE" --python "$python" --workers "${NPROC:-2}" -- \
        --models smollm2,gemma3 --datasets sst2,imdb,boolq,tellmewhy,wikibio --methods all \
        --limit 20 --limit-generation 10 --balanced --boolq-context evidence
    rc=$?
    if [ $rc -eq 0 ]; then
        echo "finish $(date -u +%FT%TZ) $(date +%s)" >> "$HERE/timeline.log"
        echo "resume.sh: finished $(date -u +%FT%TZ)"
        exit 0
    fi
    echo "stop $(date -u +%FT%TZ) $(date +%s)" >> "$HERE/timeline.log"
    echo "resume.sh: attempt $attempt ended with exit code $rc; resuming"
done
exit 1
