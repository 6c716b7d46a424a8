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
- ``"resnet18-imagenet"`` (512 features) and ``"inception_v3-imagenet"`` (2048, the
  official DVRL's image features): torchvision's ImageNet weights with their own
  preprocessing (resize, centre crop, normalisation), classification head removed. The
  weights file lives in torch's cache (``torch.hub.get_dir()/checkpoints``); it is
  downloaded there, hash-checked, only with ``download=True`` and is read with
  ``torch.load(..., weights_only=True)``, so loading it runs no code;
- any ``torch.nn.Module`` mapping ``(N, C, H, W)`` floats in [0, 1] to features.

Encoding runs chunk by chunk (uint8 pixels become floats one chunk at a time), on the
GPU when ``device="auto"`` finds one, so memory is bounded by the chunk and the output.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from dvrl_env.atomic import atomic_write
from dvrl_env.device import resolve_device

__all__ = [
    "ENCODER_NAMES",
    "PRETRAINED",
    "PretrainedWeights",
    "built",
    "cached_features",
    "encode",
    "encoder_key",
    "feature_cache_path",
    "load_pretrained_state",
    "make_encoder",
    "pretrained_features",
]


@dataclasses.dataclass(frozen=True)
class PretrainedWeights:
    """One pretrained encoder: a torchvision builder and the weights it is built for.

    ``weights`` names a torchvision weights enum member (its ``url``, ``transforms()``
    and ``meta`` are the single source of the file, the preprocessing and the classes);
    ``builder_options`` are what torchvision's builder itself sets for those weights
    (Inception-v3's ``transform_input``), so the network computes what it was trained to.
    """

    name: str
    builder: str  # a function of torchvision.models
    weights: str  # "<enum class>.<member>" in torchvision.models
    chunk_size: int  # images per forward pass: bounds memory at the upsampled size
    builder_options: tuple[tuple[str, Any], ...] = ()

    def enum(self):
        """The torchvision weights enum member."""
        import torchvision.models as models

        cls, member = self.weights.split(".")
        return getattr(getattr(models, cls), member)

    @property
    def url(self) -> str:
        return self.enum().url

    @property
    def file_name(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    @property
    def hash_prefix(self) -> str:
        """The SHA-256 prefix torchvision puts in the file name (``resnet18-f37072fd.pth``)."""
        found = torch.hub.HASH_REGEX.search(self.file_name)
        if found is None:  # every torchvision ImageNet file carries one
            raise ValueError(f"The weights file name {self.file_name!r} holds no hash.")
        return found.group(1)

    def path(self) -> Path:
        """Where torch's cache keeps the file (``$TORCH_HOME/hub/checkpoints`` by default)."""
        return Path(torch.hub.get_dir()) / "checkpoints" / self.file_name

    def key(self) -> str:
        """The cache key: the encoder, the weights' name and the file's hash prefix."""
        return f"{self.name}-{self.enum().name}-{self.hash_prefix}"


PRETRAINED = {
    spec.name: spec
    for spec in (
        PretrainedWeights("resnet18-imagenet", "resnet18", "ResNet18_Weights.IMAGENET1K_V1",
                          chunk_size=128),  # 512 features
        PretrainedWeights("inception_v3-imagenet", "inception_v3",
                          "Inception_V3_Weights.IMAGENET1K_V1", chunk_size=64,  # 2048 features
                          builder_options=(("aux_logits", True), ("transform_input", True),
                                           ("init_weights", False))),
    )
}
ENCODER_NAMES = ("flatten", "resnet18", "lenet", *PRETRAINED)
DEFAULT_CHUNK_SIZE = 256
EncoderSpec = str | nn.Module | None


def _spelling(name: str) -> str:
    """How names are compared: case, ``-`` and ``_`` do not matter."""
    return name.lower().replace("-", "").replace("_", "")


def _name(spec: EncoderSpec) -> str | None:
    """The canonical name of a string spec (None means the default), or None for a module."""
    if spec is None:
        return "flatten"
    if isinstance(spec, nn.Module):
        return None
    if isinstance(spec, str):
        for name in ENCODER_NAMES:
            if _spelling(spec) == _spelling(name):
                return name
    raise ValueError(
        f"Unknown encoder {spec!r}; use one of {list(ENCODER_NAMES)} or a torch.nn.Module "
        "that maps (N, C, H, W) float images in [0, 1] to features."
    )


class _ResNet18Features(nn.Module):
    """Random-weight ResNet-18 trunk: 512 features per image, any channel count of 1 or 3."""

    encoder_name = "resnet18"  # the progress bar's label

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

    encoder_name = "lenet"

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


def _download_weights(url: str, path: Path, hash_prefix: str) -> None:
    """Fetch ``url`` to ``path``: torch writes a temporary file, checks its SHA-256
    prefix and only then moves it into place, so a broken download leaves nothing."""
    torch.hub.download_url_to_file(url, str(path), hash_prefix=hash_prefix, progress=True)


def _check_weights_hash(path: Path, hash_prefix: str) -> None:
    """A file put in the cache by hand is checked as a downloaded one is: its SHA-256 must
    start with the prefix in its name, so the cache key (which holds the prefix) is true."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    if not digest.hexdigest().startswith(hash_prefix):
        raise ValueError(
            f"The weights file {path} is not the published one: its SHA-256 starts with "
            f"{digest.hexdigest()[:len(hash_prefix)]}, its name says {hash_prefix}. Delete it "
            "and pass download=True to fetch it again."
        )


def load_pretrained_state(name: str, *, download: bool = False) -> dict[str, torch.Tensor]:
    """The state dict of a pretrained encoder's weights, from torch's cache.

    A missing file is downloaded with ``download=True`` and is otherwise an error that
    names the file, the folder to put it in and the flag. The file is hash-checked and
    read with ``weights_only=True`` (tensors only, no code runs).
    """
    spec = PRETRAINED[_name(name)]  # type: ignore[index]
    path = spec.path()
    if not path.is_file():
        if not download:
            raise FileNotFoundError(
                f"The weights of encoder {spec.name!r} are not in torch's cache: {path} is "
                f"missing. Pass download=True to fetch them ({spec.url}, "
                f"{spec.enum().meta.get('_file_size', '?')} MB, once), or put that file in "
                f"{path.parent} yourself (torch's cache is $TORCH_HOME/hub, by default "
                "~/.cache/torch/hub)."
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        _download_weights(spec.url, path, spec.hash_prefix)
    _check_weights_hash(path, spec.hash_prefix)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"The weights file {path} cannot be read as a state dict ({err}); "
                         "delete it and pass download=True to fetch it again.") from err
    if not isinstance(state, dict):
        raise ValueError(f"The weights file {path} holds a {type(state).__name__}, not a state "
                         "dict; delete it and pass download=True to fetch it again.")
    return state


class _PretrainedFeatures(nn.Module):
    """A torchvision classifier with its weights' preprocessing in front and its head
    removed: ``(N, 1 or 3, H, W)`` floats in [0, 1] to ``(N, width)`` features."""

    def __init__(self, spec: PretrainedWeights, state_dict: dict[str, torch.Tensor] | None):
        super().__init__()
        import torchvision.models as models

        weights = spec.enum()
        net = getattr(models, spec.builder)(
            weights=None, num_classes=len(weights.meta["categories"]),
            **dict(spec.builder_options))
        if state_dict is not None:
            try:
                net.load_state_dict(state_dict)
            except RuntimeError as err:
                raise ValueError(
                    f"The weights for {spec.name!r} ({spec.path()}) do not fit torchvision's "
                    f"{spec.builder}: {str(err).splitlines()[0]} Delete the file and pass "
                    "download=True to fetch it again."
                ) from err
        if getattr(net, "AuxLogits", None) is not None:  # Inception's training-only branch
            net.aux_logits, net.AuxLogits = False, None
        net.fc = nn.Identity()
        self.encoder_name = spec.name
        self.chunk_size = spec.chunk_size  # what encode() uses unless told otherwise
        self.preprocess = weights.transforms()  # resize, centre crop, normalise
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return self.net(self.preprocess(x))


def pretrained_features(name: str, state_dict: dict[str, torch.Tensor] | None) -> nn.Module:
    """The module of a pretrained encoder on ``state_dict``.

    ``state_dict=None`` keeps torchvision's random initialisation: the same architecture
    and preprocessing, so the same compute (``benchmarks/encode_time.py`` times it where
    the weights cannot be downloaded); :func:`make_encoder` always loads the weights.
    """
    return _PretrainedFeatures(PRETRAINED[_name(name)], state_dict)  # type: ignore[index]


def make_encoder(spec: EncoderSpec = "flatten", *, seed: int = 0,
                 download: bool = False) -> nn.Module:
    """Build the module for ``spec`` (a name of :data:`ENCODER_NAMES`, or a module,
    returned as is). ``seed`` draws the random-weight encoders; ``download`` lets a
    pretrained encoder fetch its weights."""
    name = _name(spec)
    if name is None:
        return spec  # type: ignore[return-value]
    if name == "flatten":
        return nn.Flatten()
    if name == "lenet":
        return _LeNetFeatures(seed)
    if name in PRETRAINED:
        return pretrained_features(name, load_pretrained_state(name, download=download))
    return _ResNet18Features(seed)


def built(spec: EncoderSpec, *, seed: int = 0, download: bool = False) -> EncoderSpec:
    """``spec`` ready for several :func:`encode` calls: a named network is built (and its
    weights read and checked) once, here; ``"flatten"`` stays a name (it needs no module)."""
    return spec if _name(spec) == "flatten" else make_encoder(spec, seed=seed, download=download)


def encoder_key(spec: EncoderSpec) -> str:
    """A short, file-name-safe key that changes whenever the encoder's output would.

    A random-weight encoder's key is its name (its seed goes into the cache path); a
    pretrained one's adds its weights' identity, e.g.
    ``resnet18-imagenet-IMAGENET1K_V1-f37072fd`` (the file's SHA-256 prefix, checked
    before use); a module's key is its class name plus a hash of its ``repr`` (its
    configuration) and its ``state_dict`` bytes (its weights).
    """
    name = _name(spec)
    if name in PRETRAINED:
        return PRETRAINED[name].key()
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
    chunk_size: int | None = None,
    progress: bool = True,
    download: bool = False,
) -> np.ndarray:
    """Encode images ``(N, C, H, W)`` to float32 features ``(N, d)``.

    ``images`` is a numpy array or tensor, uint8 pixels (scaled to [0, 1] chunk by
    chunk, so a large set is never held as floats) or floats in [0, 1]. Modules run in
    eval mode under ``torch.no_grad`` in chunks of ``chunk_size`` images (default: the
    module's ``chunk_size`` attribute, which the pretrained encoders set since they
    upsample each image, else 256), written into one
    preallocated output; a user's module is put back in its previous train/eval mode
    and on its previous device afterwards. ``device="auto"`` uses the GPU when there is
    one. The progress bar shows on a terminal for four chunks or more; ``progress=False``
    hides it. ``download`` lets a pretrained encoder fetch its weights.
    """
    shape = tuple(images.shape)
    if len(shape) != 4:
        raise ValueError(f"images must have shape (N, C, H, W), got {shape}.")
    if shape[0] == 0:
        raise ValueError("No images to encode.")
    name = _name(spec)
    if name == "flatten":
        if isinstance(images, torch.Tensor):
            images = images.detach().cpu().numpy()
        flat = np.asarray(images).reshape(shape[0], -1)
        if flat.dtype == np.uint8:
            scaled = flat.astype(np.float32)
            scaled /= np.float32(255.0)  # in place: one float copy, not two
            return scaled
        return np.ascontiguousarray(flat, dtype=np.float32)
    model = make_encoder(spec, seed=seed, download=download)
    if chunk_size is None:
        chunk_size = getattr(model, "chunk_size", DEFAULT_CHUNK_SIZE)
    if int(chunk_size) != chunk_size or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}.")
    chunk_size = int(chunk_size)
    was_training = model.training
    first = next(itertools.chain(model.parameters(), model.buffers()), None)
    home = first.device if first is not None else None
    dev = resolve_device(device)
    bar = tqdm(
        total=shape[0],
        desc=f"encoding ({getattr(model, 'encoder_name', type(model).__name__)})",
        unit="img",
        # None: tqdm shows the bar on a terminal only (not in logs or CI)
        disable=True if not progress or shape[0] < 4 * chunk_size else None,
    )
    out: np.ndarray | None = None
    try:
        model.eval().to(dev)
        with torch.no_grad():
            for start in range(0, shape[0], chunk_size):
                chunk = _to_float(images[start : start + chunk_size]).to(dev)
                feats = model(chunk).reshape(len(chunk), -1).float().cpu().numpy()
                if out is None:
                    out = np.empty((shape[0], feats.shape[1]), dtype=np.float32)
                out[start : start + len(chunk)] = feats
                bar.update(len(chunk))
    finally:
        bar.close()
        model.train(was_training)
        if home is not None:
            model.to(home)
    return out  # type: ignore[return-value]


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


def _content_hash(path: Path, features: np.ndarray) -> str:
    """SHA-256 of the features, their dtype and shape, and the cache file's name: a file
    whose features were changed, or a valid cache file copied under another entry's name,
    no longer matches the hash stored in it."""
    digest = hashlib.sha256(f"{path.name}|{features.dtype.str}|{features.shape}|".encode())
    digest.update(np.ascontiguousarray(features).tobytes())
    return digest.hexdigest()


def _read_cache(path: Path, n_rows: int | None) -> tuple[np.ndarray | None, str]:
    """The cached features, or None and why they cannot be trusted."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            feats = npz["features"]
            stored = str(npz["sha256"]) if "sha256" in npz.files else None
    except Exception as err:  # any unreadable file is rebuilt, never trusted
        return None, f"{type(err).__name__}: {err}"
    if feats.ndim != 2 or feats.dtype != np.float32:
        return None, f"expected float32 (n, d) features, found {feats.dtype} {feats.shape}"
    if n_rows is not None and feats.shape[0] != n_rows:
        return None, f"expected {n_rows} rows, found {feats.shape[0]}"
    if stored is None:
        return None, "it holds no hash of its contents (written by an older version?)"
    if stored != _content_hash(path, feats):
        return None, ("its features do not match the hash stored with them: the file was "
                      "changed or swapped for another")
    if not np.isfinite(feats).all():
        return None, "it holds NaN or inf"
    return feats, ""


def _write_atomic(path: Path, features: np.ndarray) -> None:
    digest = np.array(_content_hash(path, features))  # a unicode array: no pickle needed
    atomic_write(path, lambda f: np.savez(f, features=features, sha256=digest))


def cached_features(
    path: str | Path, compute: Callable[[], np.ndarray], *, n_rows: int | None = None
) -> np.ndarray:
    """Load features from ``path`` or compute them with ``compute()`` and store them.

    The file stores the features with a SHA-256 of them (and of its own name). A file
    that fails to load (truncated, corrupt, wrong shape or dtype, ``n_rows`` mismatch)
    or whose features do not match the stored hash (changed, swapped for another
    file) is reported with a warning and rebuilt: the cache is derived from raw files
    that are at hand, so recomputing gives the right features, where an error would
    only make the user delete the file by hand. A cache that cannot be written
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
