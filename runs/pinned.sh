# Shared by the resume.sh scripts under runs/ (sourced from the repository root): one resume.sh of a run
# at a time, its output appended to a log, and the code the run's records came from in a git worktree.

# sole_run NAME: hold .cache/NAME-run.lock (exit if another resume.sh holds it); output to $LOG or .cache/NAME-run.log
sole_run() {
    mkdir -p .cache
    exec 9>".cache/$1-run.lock"
    flock -n 9 || { echo "resume.sh: another resume.sh is running" >&2; exit 1; }
    exec >>"${LOG:-.cache/$1-run.log}" 2>&1
}

# pinned_code DIR COMMIT: COMMIT checked out into DIR (a git worktree), unless DIR is there already
pinned_code() {
    [ -e "$1" ] && return 0
    git worktree prune
    git worktree add -q --detach "$1" "$2" || { echo "resume.sh: cannot check out $2"; exit 1; }
}
