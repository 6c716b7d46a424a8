#!/usr/bin/env bash
# Every agent without the marginal information, at 2,400 predictor fits, each at its
# best small batch size: the reward-only table of README Results.
#   bash benchmarks/reward_only_equal_fits.sh            # about 50 min on one core
# Runs append to benchmarks/results/reward_only_equal_fits.csv (delete it to start
# over); the .md beside it lists every batch size, reward_only_best_batch.md the best.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
CSV=benchmarks/results/reward_only_equal_fits.csv
ENVS="DataValuation-Adult-v0 DataValuation-Digits-v0"
COMMON=(--fits 2400 --seeds 0 1 2 --csv "$CSV" --env-arg marginal_information=false
        --env-arg predictor='"logistic"' --env-arg predictor_lr=0.05)
# Agents that learn on the env as given: the batch size is an env option.
for b in 50 100 200; do
  for env in $ENVS; do
    "$PY" benchmarks/agent_quality.py --env "$env" "${COMMON[@]}" --env-arg batch_size=$b \
      --agents reinforce-official reinforce-k8 reinforce-k8-skip gumbel ppo a2c
  done
done
# Agents that learn on their own utility env: the batch size (and K) are agent options.
for env in $ENVS; do
  "$PY" benchmarks/agent_quality.py --env "$env" "${COMMON[@]}" \
    --agents random oracle credit credit-b50 credit-k4 credit-k16 credit-k32 critic critic-b100
done
"$PY" benchmarks/agent_quality.py --summarise "$CSV" --csv "$CSV"
"$PY" benchmarks/agent_quality.py --summarise "$CSV" --best-batch \
  --csv benchmarks/results/reward_only_best_batch.csv
