#!/usr/bin/env bash
# Resume the paper-scale sweep (issue 5) into this folder: every unit already in a done log is skipped,
# a unit cut off half-way is rerun, so the records end up exactly those of one uninterrupted run.
#
#   setsid nohup runs/paper/resume.sh &    # from any folder; stops when all units are done
#
# Output goes to $LOG (default .cache/paper-run.log); one resume.sh at a time (a lock).
# NPROC processes of one thread each (default 2: on 2 cores, 1.35x the units per hour of one
# process with 2 threads). The run's manifest.json refuses to resume on other library or Python
# versions, so the environment is rebuilt from requirements.txt in $VENV (default .venv-paper) with
# $PYTHON (default python3), which must be the manifest's Python. requirements.txt pins the CPU build
# torch==2.13.0+cpu, which pip finds on these machines' local index; elsewhere add
# PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu.
set -uo pipefail
cd "$(dirname "$0")/../.."
RUN=runs/paper
VENV=${VENV:-.venv-paper}
PYTHON=${PYTHON:-python3}
mkdir -p .cache
exec 9>.cache/paper-run.lock
flock -n 9 || { echo "resume.sh: another resume.sh is running (lock .cache/paper-run.lock)" >&2; exit 1; }
exec >>"${LOG:-.cache/paper-run.log}" 2>&1
echo "resume.sh: started $(date -u +%FT%TZ)"
want=$("$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))["versions"]["python"])' "$RUN/manifest.json") \
    || { echo "resume.sh: cannot read $RUN/manifest.json with $PYTHON"; exit 1; }
have=$("$PYTHON" -c 'import platform; print(platform.python_version())')
[ "$want" = "$have" ] || { echo "resume.sh: the run was made with Python $want, $PYTHON is $have: set PYTHON"; exit 1; }
if [ -e "$VENV" ] && [ ! -f "$VENV/.complete" ]; then  # never delete a folder this script did not finish
    echo "resume.sh: $VENV exists but was not built to the end by resume.sh; remove it or set VENV"
    exit 1
fi
if [ ! -e "$VENV" ]; then
    "$PYTHON" -m venv "$VENV" \
        && "$VENV/bin/pip" install -q --no-deps -r "$RUN/requirements.txt" \
        && "$VENV/bin/pip" install -q --no-deps -e . \
        && touch "$VENV/.complete" \
        || { echo "resume.sh: cannot build $VENV from $RUN/requirements.txt"; exit 1; }
fi
export OMP_NUM_THREADS=1
for attempt in 1 2 3; do  # a crash of one process ends the whole torchrun job; the rerun resumes
    # timeline.log: the wall time of a run spread over sessions (see snapshot.sh)
    echo "start $(date -u +%FT%TZ) $(date +%s)" >> "$RUN/timeline.log"
    "$VENV/bin/torchrun" --nproc_per_node "${NPROC:-2}" -m gradellm_cli sweep --models smollm2,gemma3 \
        --datasets sst2,imdb,boolq,tellmewhy,wikibio --methods all --limit 20 --limit-generation 10 \
        --balanced --boolq-context evidence --output-dir "$RUN"
    rc=$?
    if [ $rc -eq 0 ]; then
        echo "finish $(date -u +%FT%TZ) $(date +%s)" >> "$RUN/timeline.log"
        echo "resume.sh: finished $(date -u +%FT%TZ)"
        exit 0
    fi
    echo "stop $(date -u +%FT%TZ) $(date +%s)" >> "$RUN/timeline.log"
    echo "resume.sh: attempt $attempt ended with exit code $rc; resuming"
done
exit 1
