#!/usr/bin/env bash
# Resume the runs that add the paper's baselines to Table 1: value-zeroing (both models),
# grad-ellm --variant port (SmolLM2) and attention --attention-layers all (both models), each into its
# own folder here, on the records and seeds of the published run (runs/paper).
#
#   setsid nohup runs/baselines/resume.sh &    # from any folder; stops when every folder is done
#
# Two lanes of one single-threaded sweep each: value-zeroing then grad-ellm-port, and attention-all.
# A unit already in a folder's done log is skipped and one cut off half-way is rerun, so the records
# are those of one uninterrupted run. The code is pinned to CODE_COMMIT (a git worktree in $CODE) and
# the environment to requirements.txt (in $VENV): the manifests refuse other versions, and main moves
# on (0.4.0 added metrics that `--metrics all` would now ask for). Log: $LOG (.cache/baselines-run.log).
set -uo pipefail
cd "$(dirname "$0")/../.."
RUN=runs/baselines
VENV=${VENV:-.venv-baselines}
PYTHON=${PYTHON:-python3}
CODE=${CODE:-.cache/baselines-code}
CODE_COMMIT=b016768e5377e5ea240941077e358436f19b219d  # gradellm 0.3.0, the code of every record here
. runs/pinned.sh
sole_run baselines
pinned_code "$CODE" "$CODE_COMMIT"
if [ "$(cat "$VENV/.complete" 2>/dev/null)" != "$CODE_COMMIT" ]; then
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV" \
        && "$VENV/bin/pip" install -q --no-deps -r "$RUN/requirements.txt" \
        && "$VENV/bin/pip" install -q --no-deps -e "$CODE" \
        && echo "$CODE_COMMIT" > "$VENV/.complete" \
        || { echo "resume.sh: cannot build $VENV from $RUN/requirements.txt"; exit 1; }
fi
python="$(realpath "$VENV")/bin/python" out="$(realpath "$RUN")"
export OMP_NUM_THREADS=1
COMMON=(--datasets sst2,tellmewhy,boolq --limit 20 --limit-generation 10 --balanced --boolq-context evidence --no-report)
declare -A OPTIONS=(
    [value-zeroing]="--models smollm2,gemma3 --methods value-zeroing"
    [grad-ellm-port]="--models smollm2 --methods grad-ellm --variant port"
    [attention-all]="--models smollm2,gemma3 --methods attention --attention-layers all"
)
lane() {  # the folders of one lane in turn; timeline.log: when each ran, on which CPU
    for name in "$@"; do
        cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1 | tr -s ' ' '_')
        echo "start $name $(date -u +%FT%TZ) cpu=${cpu:-unknown} nproc=$(env -u OMP_NUM_THREADS nproc)" >> "$RUN/timeline.log"
        # shellcheck disable=SC2086  # the options are words
        (cd "$CODE" && nice -n 10 "$python" -m gradellm_cli sweep "${COMMON[@]}" --output-dir "$out/$name" ${OPTIONS[$name]})
        echo "stop $name $(date -u +%FT%TZ) rc=$?" >> "$RUN/timeline.log"
    done
}
lane value-zeroing grad-ellm-port &
lane attention-all &
wait
echo "resume.sh: finished $(date -u +%FT%TZ)"
