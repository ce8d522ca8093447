#!/usr/bin/env bash
# Resume the paper-scale sweep (issue 5) into this folder: every unit already in a done log is skipped,
# a unit cut off half-way is rerun, so the records end up exactly those of one uninterrupted run.
#
#   setsid nohup runs/paper/resume.sh &    # from any folder; stops when all units are done
#
# Output goes to $LOG (default .cache/paper-run.log).
# NPROC processes of one thread each (default 2: on 2 cores, 1.35x the units per hour of one
# process with 2 threads). The environment is rebuilt from requirements.txt in $VENV (default
# .venv-paper), because the run's manifest.json refuses to resume on other library versions.
set -uo pipefail
cd "$(dirname "$0")/../.."
RUN=runs/paper
VENV=${VENV:-.venv-paper}
mkdir -p .cache
exec >>"${LOG:-.cache/paper-run.log}" 2>&1
echo "resume.sh: started $(date -u +%FT%TZ)"
echo "start $(date -u +%FT%TZ) $(date +%s)" >> "$RUN/timeline.log"  # for the wall time (snapshot.sh)
if [ ! -x "$VENV/bin/torchrun" ]; then
    python3 -m venv "$VENV" \
        && "$VENV/bin/pip" install -q --no-deps -r "$RUN/requirements.txt" \
        && "$VENV/bin/pip" install -q --no-deps -e . \
        || { echo "resume.sh: cannot build $VENV from $RUN/requirements.txt" >&2; exit 1; }
fi
export OMP_NUM_THREADS=1
for attempt in 1 2 3; do  # a crash of one process ends the whole torchrun job; the rerun resumes
    "$VENV/bin/torchrun" --nproc_per_node "${NPROC:-2}" -m gradellm_cli sweep --models smollm2,gemma3 \
        --datasets sst2,imdb,boolq,tellmewhy,wikibio --methods all --limit 20 --limit-generation 10 \
        --balanced --boolq-context evidence --output-dir "$RUN" && { echo "resume.sh: finished $(date -u +%FT%TZ)"; echo "finish $(date -u +%FT%TZ) $(date +%s)" >> "$RUN/timeline.log"; exit 0; }
    echo "resume.sh: attempt $attempt ended with an error; resuming" >&2
done
exit 1
