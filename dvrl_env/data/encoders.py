"""Image feature encoders and the on-disk feature cache.

Images reach the environment as feature vectors: the DVE and the predictors are small
MLPs, so an image set passes once through an encoder and the features are cached
under ``<root>/dvrl_cache/``. Encoders:

- ``"flatten"`` (the default): pixels in [0, 1], reshaped to ``(N, C*H*W)``;
- ``"resnet18"``: torchvision's ResNet-18 with random weights (drawn from ``seed``
  without touching the global torch RNG) and ``fc`` removed, 512 features; gray
  images are repeated to three channels;
- ``"lenet"``: a LeNet-5-style conv net with random weights (drawn from ``seed`` the
  same way), 84 features; gray images are repeated to three channels;
- any ``torch.nn.Module`` mapping ``(N, C, H, W)`` floats in [0, 1] to features.
"""

from __future__ import annotations

import hashlib
import itertools
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from dvrl_env.atomic import atomic_write
from dvrl_env.device import resolve_device

__all__ = [
    "ENCODER_NAMES",
    "cached_features",
    "encode",
    "encoder_key",
    "feature_cache_path",
    "make_encoder",
]

ENCODER_NAMES = ("flatten", "resnet18", "lenet")
EncoderSpec = str | nn.Module | None


def _name(spec: EncoderSpec) -> str | None:
    """The normalised name of a string spec (None means the default), or None for a module."""
    if spec is None:
        return "flatten"
    if isinstance(spec, nn.Module):
        return None
    if isinstance(spec, str) and spec.lower().replace("-", "") in ENCODER_NAMES:
        return spec.lower().replace("-", "")
    raise ValueError(
        f"Unknown encoder {spec!r}; use one of {list(ENCODER_NAMES)} or a torch.nn.Module "
        "that maps (N, C, H, W) float images in [0, 1] to features."
    )


class _ResNet18Features(nn.Module):
    """Random-weight ResNet-18 trunk: 512 features per image, any channel count of 1 or 3."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        from torchvision.models import resnet18

        # fork_rng restores the CPU generator afterwards, so seeding here leaves the
        # caller's (and SB3's) global RNG stream untouched. Only the CPU generator is
        # seeded: torch.manual_seed would also reseed CUDA, which fork_rng([]) ignores.
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(int(seed))
            net = resnet18(weights=None)
        net.fc = nn.Identity()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return self.net(x)


class _LeNetFeatures(nn.Module):
    """Random-weight LeNet-5-style net: conv 6@5x5, pool, conv 16@5x5, pool, 120, 84.

    An adaptive pool before the dense layers takes any image size (28x28, 32x32, ...);
    weights are drawn from ``seed`` without touching the global torch RNG.
    """

    def __init__(self, seed: int) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(int(seed))
            self.net = nn.Sequential(
                nn.Conv2d(3, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
                nn.AdaptiveAvgPool2d(5), nn.Flatten(),
                nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return self.net(x)


def make_encoder(spec: EncoderSpec = "flatten", *, seed: int = 0) -> nn.Module:
    """Build the module for ``spec`` ("flatten", "resnet18", "lenet" or a module, returned
    as is)."""
    name = _name(spec)
    if name is None:
        return spec  # type: ignore[return-value]
    if name == "flatten":
        return nn.Flatten()
    if name == "lenet":
        return _LeNetFeatures(seed)
    return _ResNet18Features(seed)


def encoder_key(spec: EncoderSpec) -> str:
    """A short, file-name-safe key that changes whenever the encoder's output would.

    A string spec is its own key; a module's key is its class name plus a hash of its
    ``repr`` (its configuration) and its ``state_dict`` bytes (its weights).
    """
    name = _name(spec)
    if name is not None:
        return name
    digest = hashlib.sha256(repr(spec).encode())
    for key, tensor in sorted(spec.state_dict().items()):  # type: ignore[union-attr]
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{key}:{flat.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return f"{type(spec).__name__}-{digest.hexdigest()[:12]}"


def _to_float(chunk) -> torch.Tensor:
    """uint8 pixels become floats in [0, 1]; float images are taken as already scaled."""
    tensor = torch.as_tensor(chunk)
    if tensor.dtype == torch.uint8:
        return tensor.float().div_(255.0)
    return tensor.float()


def encode(
    images,
    spec: EncoderSpec = "flatten",
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
    chunk_size: int = 256,
    progress: bool = True,
) -> np.ndarray:
    """Encode images ``(N, C, H, W)`` to float32 features ``(N, d)``.

    ``images`` is a numpy array or tensor, uint8 pixels (scaled to [0, 1] chunk by
    chunk, so a large set is never held as floats) or floats in [0, 1]. Modules run in
    eval mode under ``torch.no_grad`` in chunks of ``chunk_size``; a user's module is
    put back in its previous train/eval mode and on its previous device afterwards.
    ``device="auto"`` uses the GPU when there is one.
    """
    shape = tuple(images.shape)
    if len(shape) != 4:
        raise ValueError(f"images must have shape (N, C, H, W), got {shape}.")
    if shape[0] == 0:
        raise ValueError("No images to encode.")
    if _name(spec) == "flatten":
        if isinstance(images, torch.Tensor):
            images = images.detach().cpu().numpy()
        flat = np.asarray(images).reshape(shape[0], -1)
        if flat.dtype == np.uint8:
            return flat.astype(np.float32) / np.float32(255.0)
        return np.ascontiguousarray(flat, dtype=np.float32)

    model = make_encoder(spec, seed=seed)
    was_training = model.training
    first = next(itertools.chain(model.parameters(), model.buffers()), None)
    home = first.device if first is not None else None
    dev = resolve_device(device)
    n_chunks = -(-shape[0] // chunk_size)
    bar = tqdm(
        range(0, shape[0], chunk_size),
        desc=f"encoding ({encoder_key(spec) if _name(spec) else type(spec).__name__})",
        unit="chunk",
        disable=not progress or n_chunks < 4,
    )
    out = []
    try:
        model.eval().to(dev)
        with torch.no_grad():
            for start in bar:
                chunk = _to_float(images[start : start + chunk_size]).to(dev)
                feats = model(chunk)
                out.append(feats.reshape(len(chunk), -1).float().cpu().numpy())
    finally:
        model.train(was_training)
        if home is not None:
            model.to(home)
    return np.ascontiguousarray(np.concatenate(out), dtype=np.float32)


# --- feature cache ------------------------------------------------------------------


def feature_cache_path(
    root: str | Path,
    *,
    dataset: str,
    split: str,
    encoder: str,
    seed: int,
    n: int,
    fingerprint: str = "",
) -> Path:
    """``<root>/dvrl_cache/<dataset>-<split>-<encoder>-seed<seed>-n<n>[-<fingerprint>].npz``.

    ``encoder`` is an :func:`encoder_key`; ``fingerprint`` (e.g. a hash of the input
    pixels) keeps a cache from outliving a change of the raw files.
    """
    parts = [dataset, split, encoder, f"seed{seed}", f"n{n}"]
    parts += [fingerprint] if fingerprint else []
    return Path(root) / "dvrl_cache" / ("-".join(parts) + ".npz")


def _read_cache(path: Path, n_rows: int | None) -> tuple[np.ndarray | None, str]:
    """The cached features, or None and why they cannot be trusted."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            feats = npz["features"]
    except Exception as err:  # any unreadable file is rebuilt, never trusted
        return None, f"{type(err).__name__}: {err}"
    if feats.ndim != 2 or feats.dtype != np.float32:
        return None, f"expected float32 (n, d) features, found {feats.dtype} {feats.shape}"
    if n_rows is not None and feats.shape[0] != n_rows:
        return None, f"expected {n_rows} rows, found {feats.shape[0]}"
    if not np.isfinite(feats).all():
        return None, "it holds NaN or inf"
    return feats, ""


def _write_atomic(path: Path, features: np.ndarray) -> None:
    atomic_write(path, lambda f: np.savez(f, features=features))


def cached_features(
    path: str | Path, compute: Callable[[], np.ndarray], *, n_rows: int | None = None
) -> np.ndarray:
    """Load features from ``path`` or compute them with ``compute()`` and store them.

    A file that fails to load (truncated, corrupt, wrong shape or dtype, ``n_rows``
    mismatch) is reported with a warning and rebuilt. A cache that cannot be written
    (read-only folder) only warns: the features are still returned.
    """
    path = Path(path)
    if path.exists():
        feats, why = _read_cache(path, n_rows)
        if feats is not None:
            return feats
        warnings.warn(
            f"Feature cache {path} is unusable ({why}); it is rebuilt.", UserWarning, stacklevel=2
        )
    feats = np.ascontiguousarray(compute(), dtype=np.float32)
    if n_rows is not None and feats.shape[0] != n_rows:
        raise ValueError(f"The encoder returned {feats.shape[0]} rows for {n_rows} images.")
    try:
        _write_atomic(path, feats)
    except OSError as err:
        warnings.warn(
            f"Could not write feature cache {path} ({err}); features will be recomputed next "
            "time. Pass a writable root= to keep them.",
            UserWarning,
            stacklevel=2,
        )
    return feats
