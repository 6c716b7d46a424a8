#!/usr/bin/env bash
# The same benchmark on an older commit and on this tree, alternately in one run, so that
# both see the same machine and load:
#   bash benchmarks/before_after.sh b9ff320 benchmarks/throughput.py --regime recipe
# checks out OLD into a temporary git worktree (removed at the end), then runs the
# script ROUNDS times (default 2) in each, old first, each tree's own copy of the script
# from its own folder (the scripts put their tree first on sys.path), this venv's python.
set -euo pipefail
cd "$(dirname "$0")/.."
OLD=${1:?usage: before_after.sh OLD_COMMIT SCRIPT [ARGS...]}; shift
SCRIPT=${1:?usage: before_after.sh OLD_COMMIT SCRIPT [ARGS...]}; shift
PY=${PYTHON:-.venv/bin/python}
ROUNDS=${ROUNDS:-2}
NEW=$PWD
TREE=$(mktemp -d)/old
git worktree add --quiet --detach "$TREE" "$OLD"
trap 'git worktree remove --force "$TREE"' EXIT
echo "# bash benchmarks/before_after.sh $OLD $SCRIPT $*   ($(date -u +%Y-%m-%d), $(nproc) CPUs)"
echo "# old: $(git rev-parse --short "$OLD"); new: $(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo ' + changes')"
for round in $(seq "$ROUNDS"); do
  for side in old new; do
    root=$NEW; [ "$side" = old ] && root=$TREE
    echo; echo "## round $round, $side code"
    (cd "$root" && PYTHONPATH="$root" "$NEW/$PY" -c 'import dvrl_env; print("# code from", dvrl_env.__file__)' \
      && PYTHONPATH="$root" "$NEW/$PY" "$SCRIPT" "$@")
  done
done
