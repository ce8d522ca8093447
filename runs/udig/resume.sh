#!/usr/bin/env bash
# Resume the UDIG/DIG report runs: udig and dig on SST-2 and IMDb (20 records each, the first of the
# 200, balanced: the published run's records), both models, plus the top-k metrics (log-odds,
# comprehensiveness, sufficiency) of the published run's SST-2 and IMDb heatmaps of the nine methods.
#
#   setsid nohup runs/udig/resume.sh &    # from any folder; stops when every part is done
#
# Two lanes of single-threaded work. The metric set of the sweeps is soft, pi and the top-k metrics
# (and WAE); Deletion/Insertion, about a quarter of the published run's evaluation cost, is left out.
# A unit already in a folder's done log is skipped and one cut off half-way is rerun. The code is
# pinned to CODE_COMMIT (a git worktree in $CODE), run with the project's .venv: main moves on.
# Log: $LOG (.cache/udig-run.log).
set -uo pipefail
cd "$(dirname "$0")/../.."
RUN=runs/udig
VENV=${VENV:-.venv}
CODE=${CODE:-.cache/udig-code}
CODE_COMMIT=${CODE_COMMIT:-97e2f79607e60b68984a23afefc3723b917dbf1d}  # gradellm 0.4.0, the code of every record here
. runs/pinned.sh
sole_run udig
pinned_code "$CODE" "$CODE_COMMIT"
python="$(realpath "$VENV")/bin/python" out="$(realpath "$RUN")" paper="$(realpath runs/paper)"
export OMP_NUM_THREADS=1
METRICS=soft,pi,log-odds,comprehensiveness,sufficiency,wae
COMMON=(--methods udig,dig --limit 20 --balanced --metrics "$METRICS" --threads 1 --no-report)
gm() { (cd "$CODE" && nice -n 10 "$python" -m gradellm_cli "$@"); }
mark() { echo "$1 $2 $(date -u +%FT%TZ) cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1 | tr -s ' ' '_') nproc=$(env -u OMP_NUM_THREADS nproc) $3" >> "$RUN/timeline.log"; }
sweep() {  # folder, then sweep options
    local name=$1; shift
    mark start "$name" ""
    gm sweep "${COMMON[@]}" --output-dir "$out/$name" "$@"
    mark stop "$name" "rc=$?"
}
published_topk() {  # the published SST-2 and IMDb heatmaps of every method, top-k metrics only
    local dir="$out/published-topk"
    mkdir -p "$dir"
    if [ ! -s "$dir/heatmaps.jsonl" ]; then
        cat "$paper"/heatmaps.*.jsonl | grep -E '"dataset":"(sst2|imdb)"' | grep '"kind":"heatmap"' > "$dir/heatmaps.jsonl.part" \
            && mv "$dir/heatmaps.jsonl.part" "$dir/heatmaps.jsonl"
    fi
    mark start published-topk ""
    gm evaluate --heatmaps "$dir/heatmaps.jsonl" --metrics log-odds,comprehensiveness,sufficiency --threads 1 \
        --output "$dir/metrics.jsonl"
    mark stop published-topk "rc=$?"
}
# IMDb on Gemma-3 costs about twice SmolLM2's per unit: its records are split four ways, one share
# after SmolLM2's IMDb in the first lane, three in the second.
imdb_gemma3() { sweep imdb-gemma3 --models gemma3 --datasets imdb --shard "$1/4"; }
(sweep sst2 --models smollm2,gemma3 --datasets sst2 --shard 0/2; sweep imdb-smollm2 --models smollm2 --datasets imdb; imdb_gemma3 0) &
(published_topk; sweep sst2 --models smollm2,gemma3 --datasets sst2 --shard 1/2; imdb_gemma3 1; imdb_gemma3 2; imdb_gemma3 3) &
wait
echo "resume.sh: finished $(date -u +%FT%TZ)"
