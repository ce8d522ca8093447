#!/usr/bin/env bash
# Commit what the paper run has finished so far; safe while the sweep is still writing.
#
#   experiments/paper/snapshot.sh [RUN_DIR]    # RUN_DIR: a run folder elsewhere to copy in (default: runs/paper)
#
# The done logs are staged (or copied) before the record files. The sweep appends a unit's heatmap
# and metric records before its done line, so every unit the staged done logs name has all its
# records staged too; records of a unit half-written at that moment are cut out and rerun on resume.
# Runs under the lock /tmp/git.lock ($GIT_LOCK); commit other work under the same lock
# (`flock /tmp/git.lock git commit ...`), and nothing is done while anything else is staged.
set -euo pipefail
shopt -s nullglob
HERE=$(cd "$(dirname "$0")" && pwd)
SOURCE=$(realpath "${1:-$HERE/../../runs/paper}")
if [ "${SNAPSHOT_LOCKED:-}" != 1 ]; then
    exec env SNAPSHOT_LOCKED=1 flock "${GIT_LOCK:-/tmp/git.lock}" "$HERE/snapshot.sh" "$SOURCE"
fi
cd "$HERE/../.."
RUN=runs/paper
if [ -n "$(git diff --cached --name-only -- . ':!runs/paper/*.jsonl' ':!runs/paper/manifest.json' ':!experiments/paper/timeline.log')" ]; then
    echo "snapshot.sh: other changes are staged; commit or unstage them first" >&2
    exit 1
fi
done_logs=("$SOURCE"/done*.jsonl)
if [ ${#done_logs[@]} -eq 0 ]; then
    echo "snapshot.sh: no unit is done yet"
    exit 0
fi
if [ "$SOURCE" != "$(realpath "$RUN")" ]; then
    cp "${done_logs[@]}" "$RUN"/
    cp "$SOURCE"/manifest.json "$SOURCE"/heatmaps*.jsonl "$SOURCE"/metrics*.jsonl "$RUN"/
fi
git add -- "$RUN"/done*.jsonl
git add -- "$RUN"/manifest.json "$RUN"/heatmaps*.jsonl "$RUN"/metrics*.jsonl
units=$(for f in $(git ls-files "$RUN" | grep '/done'); do git show ":$f"; done | wc -l)
if git diff --cached --quiet; then
    echo "snapshot.sh: nothing new ($units units done)"
    exit 0
fi
# timeline.log: resume.sh writes "start" before and "stop" or "finish" after each sweep, this script
# "snapshot"; wall_time.py (beside this script, the same rule as publish.py's) sums its segments.
echo "snapshot $(date -u +%FT%TZ) $(date +%s) $units" >> "$HERE/timeline.log"
hours=$(python3 "$HERE/wall_time.py" "$HERE/timeline.log")
git add -- "$HERE/timeline.log"
git commit -q -m "Paper run: $units of 1440 units done ($hours h of wall time)"
echo "snapshot.sh: committed $units units; wall time so far $hours h"
