#!/usr/bin/env bash
# The GPU checks, in one prepared run of under 5 minutes on a machine with CUDA, from a
# fresh copy of the repo:
#   bash benchmarks/gpu.sh            # writes benchmarks/results/gpu.txt (or $GPU_OUT)
# 1. CUDA is there; 2. fits per second of the batched env on CUDA, K = 8, 64, 512, on
# Adult and Digits (MLP predictor, env defaults), next to the single env and the GPU's
# float32 matrix-multiply peak; 3. the 50,000 x 512 synthetic set with K = 8 and 64
# slots on one copy of the data; 4. a fixed-seed step's reward on CPU and on CUDA (they
# differ: the env's generator lives on its device, and CUDA's draws other batches
# and mini-batch orders for the same seed; the H200 run of 2026-12-04 measured it); 5. the main job
# on CUDA.
# Everything else in the repo runs without a GPU; this script needs one.
set -euo pipefail
cd "$(dirname "$0")/.."
# this repo's venv, else a python3 that already has torch (a GPU image), else a new venv
PY=${PYTHON:-.venv/bin/python}
if [ ! -x "$PY" ]; then
  if python3 -c "import torch, gymnasium" 2>/dev/null; then PY=python3
  else python3 -m venv .venv && .venv/bin/pip install -q -e ".[dev]"; PY=.venv/bin/python; fi
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
OUT=${GPU_OUT:-benchmarks/results/gpu.txt}
TMP=$(mktemp)
{
  echo "# bash benchmarks/gpu.sh, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  "$PY" -c "from dvrl_env.app.bench.code import code_line; print(code_line())"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  "$PY" -c "import torch; assert torch.cuda.is_available(), 'CUDA is not available'; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"

  echo; echo "## 2. trainings per second on CUDA (SyncVectorEnv only at K = 8)"
  timeout 150 "$PY" benchmarks/throughput.py --device cuda --predictors mlp --ks 8 64 512 \
    --sync-max-k 8 --regime large || echo "throughput: stopped at its time limit (150 s)"

  echo; echo "## 3. 50,000 x 512 synthetic points, K slots on one copy of the data"
  timeout 60 "$PY" benchmarks/scale.py --device cuda --slots 8 64 --predictor mlp --epochs 10 \
    || echo "scale: stopped at its time limit (60 s)"

  echo; echo "## 4. one fixed-seed step on CPU and on CUDA"
  "$PY" - <<'EOF'
import numpy as np
from dvrl_env import DataValuationEnv, load_dataset

data = load_dataset("adult", noise_rate=0.2, seed=0)
rewards = {}
for device in ("cpu", "cuda"):
    for predictor in ("mlp", "logistic"):
        env = DataValuationEnv(data, predictor=predictor, metric="neg_log_loss", device=device)
        env.reset(seed=0)
        action = np.random.default_rng(0).integers(0, 2, env.batch_size)
        rewards[device, predictor] = env.step(action)[1]
for predictor in ("mlp", "logistic"):
    cpu, cuda = rewards["cpu", predictor], rewards["cuda", predictor]
    verdict = ("same within 1e-4" if abs(cpu - cuda) <= 1e-4 else "different: a seed draws "
               "other weights and orders on each device's generator")
    print(f"{predictor}: reward on CPU {cpu:.6f}, on CUDA {cuda:.6f}: {verdict}")
EOF

  echo; echo "## 5. the main job on CUDA"
  start=$(date +%s)
  timeout 60 "$PY" -m dvrl_env value --env DataValuation-Digits-v0 --noise-rate 0.2 \
    --agent reinforce --agent-arg num_samples=8 --agent-arg architecture=skip \
    --agent-arg device='"cuda"' --env-arg device='"cuda"' --steps 30 --seed 0 \
    --out /tmp/dvrl-gpu-run --overwrite --quiet || echo "main job: stopped at 60 s"
  echo "main job: $(( $(date +%s) - start )) s"
  cat /tmp/dvrl-gpu-run/report.md 2>/dev/null | head -20 || true
} 2>&1 | tee "$TMP"
mv "$TMP" "$OUT"
echo "wrote $OUT"
