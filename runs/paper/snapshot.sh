#!/usr/bin/env bash
# Commit what the paper run has finished so far; safe while the sweep is still writing.
#
#   runs/paper/snapshot.sh [RUN_DIR]    # RUN_DIR: a run folder elsewhere to copy in (default: this one)
#
# The done logs are staged (or copied) before the record files. The sweep appends a unit's heatmap
# and metric records before its done line, so every unit the staged done logs name has all its
# records staged too; records of a unit half-written at that moment are cut out and rerun on resume.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUN=runs/paper
SOURCE=${1:-$RUN}
if [ -n "$(git diff --cached --name-only | grep -v "^$RUN/")" ]; then
    echo "snapshot.sh: other changes are staged; commit or unstage them first" >&2
    exit 1
fi
if [ "$(realpath "$SOURCE")" != "$(realpath "$RUN")" ]; then
    cp "$SOURCE"/done*.jsonl "$RUN"/
    cp "$SOURCE"/manifest.json "$SOURCE"/heatmaps*.jsonl "$SOURCE"/metrics*.jsonl "$RUN"/
fi
git add "$RUN"/done*.jsonl
git add "$RUN"/manifest.json "$RUN"/heatmaps*.jsonl "$RUN"/metrics*.jsonl
units=$(for f in $(git ls-files "$RUN" | grep '/done'); do git show ":$f"; done | wc -l)
if git diff --cached --quiet; then
    echo "snapshot.sh: nothing new ($units units done)"
    exit 0
fi
git commit -q -m "Paper run: $units of 1440 units done"
echo "snapshot.sh: committed $units units"
