"""Peer comparison: this project's values beside the data-valuation methods a
practitioner would pick instead, each computed by its own library, on the same splits
and label noise (``dvrl_env.data.datasets.load_dataset(name, noise_rate=r, seed=s)``).

    python benchmarks/peers/compare.py            # Digits, Adult x noise 0.1/0.2/0.4 x 5 seeds
    python benchmarks/peers/compare.py --quick    # 3 seeds, noise 0.2, fewer RL updates
    python benchmarks/peers/compare.py --methods cleanlab knn-shapley --seeds 0 1

Methods (see ``methods.py``): cleanlab (confident learning; the ``peers`` extra:
``pip install -e '.[peers]'``), pyDVL 0.10's KNN-Shapley, Data-OOB and leave-one-out,
OpenDataVal 1.3's DVRL, and this project's ``marginal`` and ``reinforce`` (K=8) agents.
pyDVL and OpenDataVal cannot share the project's numpy 2 / torch 2.x environment: each
gets its own venv under ``benchmarks/peers/.venvs/``, built from PyPI on first use
(about 1 min for pyDVL, about 4 min and 5 GB for OpenDataVal's torch 2.1 with its CUDA
wheels), and a worker script exchanges arrays with it through ``.npz`` files.

Every finished run is appended to the CSV at once (``benchmarks/results/peers.csv``,
``peers_quick.csv`` for ``--quick``); a rerun skips runs already there with the same
settings and retries failed ones. The markdown table (``peers.md``) holds the mean and
95% interval over seeds of detection AUROC, F1 at the noise rate, robust-learning
accuracy and wall time. A method that cannot run is listed with its reason, never with
a number. Run it under ``nice``; everything is single-threaded.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

try:
    from benchmarks.peers import methods, table, venvs
except ModuleNotFoundError:  # run as a file
    import methods
    import table
    import venvs

RESULTS = Path(__file__).resolve().parents[1] / "results"


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="seeds 0 1 2, noise 0.2, 50 RL updates (about 5 min once venvs exist)")
    p.add_argument("--datasets", nargs="+", default=["digits", "adult"],
                   choices=sorted(methods.ENV_IDS))
    p.add_argument("--noise", nargs="+", type=float, default=None,
                   help="noise rates (default 0.1 0.2 0.4; --quick: 0.2)")
    p.add_argument("--seeds", nargs="+", type=int, default=None,
                   help="data and method seeds (default 0..4; --quick: 0 1 2)")
    p.add_argument("--methods", nargs="+", default=list(methods.METHODS),
                   choices=list(methods.METHODS))
    p.add_argument("--reinforce-updates", type=int, default=None,
                   help="updates of reinforce-k8 (default 150; --quick: 50)")
    p.add_argument("--predictor", default="logistic", choices=["logistic", "mlp"],
                   help="the env's predictor for this project's agents (default logistic)")
    p.add_argument("--loo-cold", action="store_true",
                   help="LOO: clone a fresh model for every fit (pyDVL's default, ~30x "
                        "slower) instead of warm-starting the same logistic regression")
    p.add_argument("--csv", type=Path, default=None)
    p.add_argument("--md", type=Path, default=None)
    p.add_argument("--rebuild-venvs", action="store_true",
                   help="rebuild the peer venvs (also retries ones that failed to install)")
    p.add_argument("--timeout", type=float, default=3600, help="seconds per worker run")
    args = p.parse_args(argv)
    args.noise = args.noise or ([0.2] if args.quick else [0.1, 0.2, 0.4])
    args.seeds = args.seeds if args.seeds is not None else ([0, 1, 2] if args.quick
                                                            else list(range(5)))
    if args.reinforce_updates is None:
        args.reinforce_updates = 50 if args.quick else 150
    stem = "peers_quick" if args.quick else "peers"
    args.csv = args.csv or RESULTS / f"{stem}.csv"
    args.md = args.md or args.csv.with_suffix(".md")
    return args


def settings_for(label: str, args) -> dict:
    """The settings a run of ``label`` depends on (its part of the resume key)."""
    return {"cleanlab": {"folds": 5, "model": "logistic"},
            "knn-shapley": {"knn_k": 5},
            "data-oob": {"oob_estimators": 400},
            "loo": {"loo_warm_start": not args.loo_cold},
            "opendataval-dvrl": {"odv_rl_epochs": 1000},
            "marginal": {"predictor": args.predictor},
            "reinforce-k8": {"predictor": args.predictor,
                             "agent_updates": args.reinforce_updates}}[label]


def score(dataset, values) -> dict:
    from dvrl_env.evaluation import detection_scores, robust_learning

    det = detection_scores(dataset, values)
    row = {"auroc": det.auroc, "auprc": det.auprc, "f1": det.f1}
    try:
        rl = robust_learning(dataset, values)
        row.update(robust_acc=rl.weighted, unweighted_acc=rl.unweighted, clean_acc=rl.clean)
    except ValueError as err:  # e.g. every value <= 0: no positive weight
        row.update(robust_acc=float("nan"), robust_note=str(err))
    return row


def run_one(label: str, dataset, seed: int, settings: dict, status, timeout: float) -> dict:
    method = methods.METHODS[label]
    row = {"method": label, "library": method.library,
           "version": methods.library_version(method.library)}
    start = time.perf_counter()
    try:
        if status is not None and not status.ok:
            raise venvs.PeerError(f"not installable: {status.reason}")
        values, seconds, info = methods.compute(label, dataset, seed, settings,
                                                venv_status=status, timeout=timeout)
        if not np.isfinite(values).all():
            raise venvs.PeerError("failed: values contain NaN or inf")
        row.update(score(dataset, values), seconds=seconds, status="ok",
                   own_flags_f1=info.pop("own_flags_f1", ""))
        row["version"] = info.pop(method.venv or "-", row["version"])
        row["info"] = {**info, **({"robust_note": row.pop("robust_note")}
                                  if "robust_note" in row else {})}
    except venvs.PeerError as err:
        row.update(status=str(err))
    except Exception as err:  # a library's own error: report it, never a number
        row.update(status=f"failed: {type(err).__name__}: {err}"[:400])
    row["seconds_total"] = time.perf_counter() - start
    return row


def main(argv=None) -> int:
    args = parse(argv)
    from dvrl_env.data.datasets import load_dataset

    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    command = " ".join(["python benchmarks/peers/compare.py",
                        *(sys.argv[1:] if argv is None else argv)])
    t0 = time.perf_counter()
    statuses = {}
    for name in sorted({methods.METHODS[m].venv for m in args.methods} - {None}):
        statuses[name] = venvs.ensure(name, rebuild=args.rebuild_venvs)
    build_s = sum(s.build_seconds for s in statuses.values() if s.built_now)
    for s in statuses.values():
        state = "ready" if s.ok else f"NOT installable: {s.reason}"
        when = f"built now in {s.build_seconds:.0f} s" if s.built_now else (
            f"built earlier in {s.build_seconds:.0f} s")
        print(f"[peers] venv {s.name}: {state} ({when})")
    if build_s:
        print(f"[peers] venv building took {build_s:.0f} s in all")

    finished = table.done(table.read(args.csv))
    planned = []
    t_runs = time.perf_counter()
    for name in args.datasets:
        for noise in args.noise:
            for seed in args.seeds:
                dataset = None
                for label in args.methods:
                    settings = settings_for(label, args)
                    base = {"dataset": name, "noise_rate": noise, "seed": seed,
                            "settings": json.dumps(settings, sort_keys=True)}
                    planned.append(table.key(base | {"method": label}))
                    if planned[-1] in finished:
                        continue
                    if dataset is None:
                        dataset = load_dataset(name, noise_rate=noise, seed=seed)
                    status = statuses.get(methods.METHODS[label].venv)
                    row = base | run_one(label, dataset, seed, settings, status, args.timeout)
                    row["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
                    table.append(args.csv, row)
                    shown = (f"AUROC {row['auroc']:.3f}  F1 {row['f1']:.3f}  robust "
                             f"{row.get('robust_acc', float('nan')):.3f}  "
                             f"{row['seconds']:.1f} s" if row["status"] == "ok"
                             else row["status"])
                    print(f"[peers] {name} noise {noise:g} seed {seed} {label}: {shown}",
                          flush=True)
    run_s = time.perf_counter() - t_runs
    wanted = set(planned)
    mine = [r for r in table.read(args.csv) if table.key(r) in wanted]
    title = "Peer comparison" + (" (--quick)" if args.quick else "")
    text = table.markdown(mine, list(methods.METHODS), title=title, command=command)
    summed = sum(float(r["seconds_total"] or 0) for r in mine)
    text += (f"\nWall time: {len(mine)} runs in this table, {summed:.0f} s summed over "
             f"runs (each with its worker's start-up and the scoring); this command "
             f"{time.perf_counter() - t0:.0f} s (runs {run_s:.0f} s, venv building "
             f"{build_s:.0f} s), runs already in {args.csv.name} not repeated.\n")
    args.md.parent.mkdir(parents=True, exist_ok=True)
    args.md.write_text(text)
    print(text)
    print(f"[peers] wrote {args.csv} and {args.md}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
