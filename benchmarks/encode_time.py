"""How long full-size CIFAR-10 takes to encode with the pretrained encoders, and in how
much memory: measured on a subset, extrapolated to 50,000 and 60,000 images.

    python benchmarks/encode_time.py                       # 1 and 2 threads, CPU
    python benchmarks/encode_time.py --threads 1 --images 128 64
    python benchmarks/encode_time.py --device cuda         # on a GPU

Where the ImageNet weights cannot be downloaded, the encoders run on torchvision's
random initialisation (``encoders.pretrained_features(name, None)``): the same
architecture, the same preprocessing (32x32 CIFAR-sized uint8 images resized to 256 or
342 and cropped to 224 or 299) and so the same compute as the real weights. Each
(encoder, threads) pair runs in a fresh process through ``encoders.encode`` with the
encoder's default chunk, so its peak RSS (``resource.getrusage``) is its own; a warm-up
chunk of 8 images is not timed. Writes ``benchmarks/results/encode_time.txt``.

Extrapolation: time scales with the image count at the measured rate. Memory during
encoding is bounded by the chunk, so the peak at full size is the measured peak plus
what grows with the count: the features (n x d float32) and the uint8 pixels the loader
holds (the training and test pools and one split's copy, at most 2 x 60,000 x 3,072
bytes); the figure below adds both in full for 60,000 images (``n_train="all"``,
``n_valid`` 1,000, the 10,000 test images), an upper bound.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "encode_time.txt"
ROOT = Path(__file__).resolve().parents[1]
FULL = {"50,000": 50_000, "60,000": 60_000}  # CIFAR-10's training set; with the test set
PIXELS = 3 * 32 * 32


def child(name: str, threads: int, n_images: int, device: str) -> dict:
    """One measurement in this (fresh) process."""
    import numpy as np
    import torch

    from dvrl_env.data import encoders

    torch.set_num_threads(threads)
    start = time.perf_counter()
    module = encoders.pretrained_features(name, None)
    build = time.perf_counter() - start
    images = np.random.default_rng(0).integers(0, 256, (n_images, 3, 32, 32), dtype=np.uint8)
    encoders.encode(images[:8], module, device=device, progress=False)  # warm-up
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    rss_built = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    feats = encoders.encode(images, module, device=device, progress=False)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return {"encoder": name, "threads": threads, "device": device,
            "chunk": module.chunk_size, "images": n_images, "width": int(feats.shape[1]),
            "build_s": round(build, 2), "seconds": round(seconds, 2),
            "rss_before_mb": round(rss_built), "peak_rss_mb":
                round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def run_child(name: str, threads: int, n_images: int, device: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(threads)}
    out = subprocess.run([sys.executable, __file__, "--child", name, str(threads),
                          str(n_images), "--device", device],
                         check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def report(rows: list[dict], command: str) -> str:
    lines = [
        f"Command: {command}",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores "
        f"(shared with other jobs; load average at the start "
        f"{os.getloadavg()[0]:.1f}), torch {rows[0]['torch']}",
        "Encoders on torchvision's random initialisation (same architecture, preprocessing "
        "and compute as the ImageNet weights); CIFAR-sized 32x32x3 uint8 images.",
        "",
        "encoder | device | threads | chunk | images | seconds | img/s | RSS before (MiB) | "
        "peak RSS (MiB) | extrapolated 50,000 (min) | extrapolated 60,000 (min) | "
        "extrapolated peak, 60,000 (MiB)",
        "---|---|---|---|---|---|---|---|---|---|---|---",
    ]
    for r in rows:
        rate = r["images"] / r["seconds"]
        minutes = {k: n / rate / 60 for k, n in FULL.items()}
        grows = FULL["60,000"] * (4 * r["width"] + 2 * PIXELS) / 2**20
        lines.append(
            f"{r['encoder']} | {r['device']} | {r['threads']} | {r['chunk']} | {r['images']} | "
            f"{r['seconds']:.1f} | {rate:.2f} | {r['rss_before_mb']} | {r['peak_rss_mb']} | "
            f"{minutes['50,000']:.0f} | "
            f"{minutes['60,000']:.0f} | {r['peak_rss_mb'] + grows:.0f}")
    lines += ["", "RSS before: after building the model and a warm-up of 8 images; peak "
              "RSS: the whole process (Python, torch, the model, one chunk's activations, the "
              "features), measured; extrapolated peak adds 60,000 x (4 x width + 2 x "
              "3,072) bytes (features and uint8 pixels), an upper bound."]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", nargs=3, metavar=("ENCODER", "THREADS", "IMAGES"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--images", type=int, nargs=2, default=[512, 256],
                        metavar=("RESNET18", "INCEPTION_V3"),
                        help="images timed per run (default 512 and 256: four chunks each)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.child:
        name, threads, n_images = args.child
        print(json.dumps(child(name, int(threads), int(n_images), args.device)))
        return 0

    import torch

    from dvrl_env.atomic import atomic_write_text
    from dvrl_env.data import encoders

    rows = []
    for name, n_images in zip(encoders.PRETRAINED, args.images, strict=True):
        for threads in args.threads:
            row = {**run_child(name, threads, n_images, args.device), "torch": torch.__version__}
            print(json.dumps(row), flush=True)
            rows.append(row)
    from dvrl_env.app.bench.code import code_line

    command = "python benchmarks/encode_time.py " + " ".join(sys.argv[1:])
    text = code_line() + "\n" + report(rows, command.strip())
    atomic_write_text(args.out, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
