"""Scale: 50,000 training points of 512 features (CIFAR-10's size after a ResNet encoder),
K slots sharing one copy of the data.

    python benchmarks/scale.py                      # K = 8, logistic predictor, B = 2000
    python benchmarks/scale.py --slots 1 8 32 --predictor mlp --epochs 5

Builds a synthetic dataset (Gaussian class blobs, 10 classes, 20% flipped labels),
one single env, then vector envs of K slots made from it (``make_vector_env``: the
config, and with it the data on the device, is shared), and prints the process's
resident memory after each, the growth per slot, the time of a reset (the env's one
fixed baseline, trained once for all K slots, and K initial predictors) and of a step
(K predictors trained on K random selections), and the process's peak memory. The data
is held once: memory grows with the data, not with K. The first line names the code
(``dvrl_env.app.bench.code``), so the numbers can be matched to what produced them.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dvrl_env import DataValuationEnv, from_arrays  # noqa: E402
from dvrl_env.app.bench.code import code_line  # noqa: E402
from dvrl_env.app.bench.run_cell import set_threads  # noqa: E402
from dvrl_env.envs.vector import make_vector_env  # noqa: E402


def resident_mib() -> float:
    """The process's resident memory now (Linux ``/proc/self/statm``)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synthetic(n_train: int, n_valid: int, d: int, classes: int, seed: int):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (classes, d)).astype(np.float32)

    def draw(n: int):
        y = rng.integers(0, classes, n)
        return centres[y] + rng.normal(0, 3, (n, d)).astype(np.float32), y

    (x, y), (xv, yv) = draw(n_train), draw(n_valid)
    return from_arrays(x, y, xv, yv, noise_rate=0.2, seed=seed, name="synthetic")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-train", type=int, default=50_000)
    parser.add_argument("--n-valid", type=int, default=1000)
    parser.add_argument("--features", type=int, default=512)
    parser.add_argument("--slots", type=int, nargs="+", default=[8])
    parser.add_argument("--predictor", default="logistic", choices=["logistic", "mlp"])
    parser.add_argument("--batch-size", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    set_threads(args.threads)
    print(code_line(), flush=True)

    start = resident_mib()
    dataset = synthetic(args.n_train, args.n_valid, args.features, 10, seed=0)
    data_mib = dataset.x_train.nbytes / 2**20
    print(f"synthetic data: {args.n_train} x {args.features} float32 = {data_mib:.0f} MiB "
          f"of training features; resident {resident_mib() - start:+.0f} MiB")
    env = DataValuationEnv(dataset, predictor=args.predictor, batch_size=args.batch_size,
                           predictor_epochs=args.epochs, device=args.device)
    print(f"single env (data on {env.device}, marginal information): resident "
          f"{resident_mib() - start:+.0f} MiB")
    base = resident_mib()
    rng = np.random.default_rng(0)
    for k in args.slots:
        vec = make_vector_env(env, k)
        t0 = time.perf_counter()
        vec.reset(seed=0)
        reset_s = time.perf_counter() - t0
        fits = vec.fits
        action = rng.integers(0, 2, (k, args.batch_size), dtype=np.int8)
        t0 = time.perf_counter()
        vec.step(action)
        step_s = time.perf_counter() - t0
        grown = resident_mib() - base
        shared = sum(t.nbytes for t in vec.config.tensors.values()) / 2**20
        state = vec.core.predictors.state_dict()
        weights = sum(t.nbytes for part in state.values() for t in part.values()) / 2**20
        same = vec.config is env.config
        print(f"K = {k:3d}: reset {reset_s:6.2f} s ({fits} fit: the one fixed baseline on all "
              f"{args.n_train} points, shared by the K slots), step {step_s:6.2f} s "
              f"({k / step_s:.1f} fits/s); tensors held: "
              f"data {shared:.0f} MiB {'shared with the single env' if same else 'COPIED'}, "
              f"K predictors' weights {weights:.2f} MiB; resident {grown:+.0f} MiB over "
              f"the single env (training buffers included); peak so far {peak_mib():.0f} MiB",
              flush=True)
        del vec
    print(f"peak resident memory of the process: {peak_mib():.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
