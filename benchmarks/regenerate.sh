#!/usr/bin/env bash
# Regenerate the results tables the README and docs/ cite, one spec after another, with
# `dvrl bench ... --resume --rerun-stale` (a stopped run continues where it stopped; rows
# of other code are run again), and log each spec's wall time:
#   bash benchmarks/regenerate.sh                 # every spec in TABLES order
#   bash benchmarks/regenerate.sh leaderboard     # only these specs
# WORKERS (default 2) local worker processes of one thread each. benchmarks/README.md
# lists what each spec writes and how long it took here.
set -uo pipefail
cd "$(dirname "$0")/.."
DVRL=${DVRL:-.venv/bin/dvrl}
WORKERS=${WORKERS:-2}
LOG=${LOG:-benchmarks/results/regenerate.log}
# spec -> results directory
declare -A OUT=(
  [label_issues]=benchmarks/results/label_issues
  [leaderboard]=benchmarks/results/leaderboard
  [non_mdp]=benchmarks/results/studies/non_mdp
  [reward_only_equal_fits]=benchmarks/results/reward_only_equal_fits
  [weak_marginal]=benchmarks/results/weak_marginal
  [reward_credit]=benchmarks/results/reward_credit
  [credit_choices]=benchmarks/results/credit_choices
  [learnability]=benchmarks/results/studies/learnability
  [marginal_information]=benchmarks/results/studies/marginal_information
  [weak_signal]=benchmarks/results/studies/weak_signal
  [agent_quality]=benchmarks/results/agent_quality
  [peers]=benchmarks/results/peers
)
TABLES=(label_issues leaderboard weak_signal non_mdp learnability marginal_information
        reward_only_equal_fits weak_marginal reward_credit credit_choices agent_quality peers)
# the order they run in: most cited first
specs=("$@"); [ ${#specs[@]} -eq 0 ] && specs=("${TABLES[@]}")
status=0
for spec in "${specs[@]}"; do
  out=${OUT[$spec]:-}
  [ -n "$out" ] || { echo "regenerate: unknown spec $spec; one of: ${TABLES[*]}" >&2; exit 2; }
  start=$(date +%s)
  PYTHONPATH=. "$DVRL" bench "benchmarks/specs/$spec.toml" --out "$out" --workers "$WORKERS" \
    --threads 1 --resume --rerun-stale
  rc=$?
  [ $rc -eq 0 ] || status=$rc
  echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) $spec -> $out: rc $rc, $(( $(date +%s) - start )) s wall, $WORKERS workers, $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- dvrl_env agents benchmarks/*.py benchmarks/peers benchmarks/studies || echo '+changes')" | tee -a "$LOG"
done
exit $status
