"""Agent checkpoints that cannot run code: tensors and plain values, read with
``torch.load(weights_only=True)``.

``weights_only=True`` rebuilds tensors, numbers, strings, lists, tuples and dicts and
refuses every other pickled object before it is created, so a crafted file raises
instead of executing. Stable-Baselines3's own zip is refused outright: its ``data`` entry
holds cloudpickled Python objects that its loader unpickles before anything is checked.
SB3 agents save their policy and optimizer weights, counters and RNG states in the same
tensor checkpoint as every other agent.
"""

from __future__ import annotations

import io
import json
import os
import random
import zipfile
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from dvrl_env.atomic import atomic_write

FORMAT = "dvrl-agent"
VERSION = 1
_FIELDS = {"agent": str, "seed": int, "config": dict, "steps_done": int, "fits_used": int,
           "state": dict,
           "generator": torch.Tensor, "env": dict, "metadata": str}


class CheckpointError(ValueError):
    """A file that is not a loadable agent checkpoint, or one for another env; the
    message names the file, the problem and what to do."""


def write_checkpoint(path: str | os.PathLike, checkpoint: dict[str, Any]) -> None:
    """``torch.save`` to a temporary file renamed over ``path``: a kill never leaves half
    a checkpoint. The bytes are made in memory first, so a full disk is the OSError it is
    (torch's writer reports it as a RuntimeError, "unexpected pos")."""
    buffer = io.BytesIO()
    torch.save({"format": FORMAT, "version": VERSION, **checkpoint}, buffer)
    atomic_write(path, lambda f: f.write(buffer.getbuffer()))


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint at ``path``, checked field by field; nothing in it is executed."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No agent checkpoint at {path}.")
    if _is_sb3_zip(path):
        raise CheckpointError(
            f"{path} is a Stable-Baselines3 zip. Its 'data' entry can hold pickled Python "
            "code, so dvrl-env does not load it; save the agent with agent.save(path), which "
            "writes tensors and JSON only (load a plain SB3 model you trust with PPO.load).")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any parse failure means the same to the user
        reason = load_failure(err)
        raise CheckpointError(
            f"{path} is not a readable dvrl-env agent checkpoint (damaged, truncated, or not "
            f"written by agent.save: {reason}). Delete it to start the run again, or restore "
            "it from a copy.") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise CheckpointError(f"{path} is a torch file but not a dvrl-env agent checkpoint "
                              "(no 'format': 'dvrl-agent' entry); it was not written by "
                              "agent.save.")
    if checkpoint.get("version") != VERSION:
        raise CheckpointError(f"{path} is a version {checkpoint.get('version')} checkpoint; "
                              f"this dvrl-env reads version {VERSION}.")
    for name, kind in _FIELDS.items():
        if not isinstance(checkpoint.get(name), kind):
            raise CheckpointError(f"{path} is damaged: its {name!r} entry is missing or not "
                                  f"a {kind.__name__}.")
    for name in ("steps_done", "fits_used"):
        if checkpoint[name] < 0:
            raise CheckpointError(f"{path} is damaged: {name} is {checkpoint[name]}, "
                                  "a count that cannot be negative.")
    generator = checkpoint["generator"]
    expected = torch.Generator().get_state()
    if generator.dtype != expected.dtype or generator.shape != expected.shape:
        raise CheckpointError(f"{path} is damaged: its generator state is a {generator.dtype} "
                              f"tensor of shape {list(generator.shape)}, not a torch.Generator "
                              f"state ({expected.dtype}, {list(expected.shape)}).")
    try:
        metadata = json.loads(checkpoint["metadata"])
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path} is damaged: its metadata is not JSON ({err}).") from None
    if not isinstance(metadata, dict):
        raise CheckpointError(f"{path} is damaged: its metadata is not a JSON object.")
    return checkpoint


def load_failure(err: Exception) -> str:
    """The line of a ``torch.load`` error that says what is wrong with the file. Torch's
    advice to load with ``weights_only=False`` is left out: that runs the file's code."""
    lines = [line.strip() for line in str(err).splitlines()
             if line.strip() and "weights_only" not in line]
    return (lines[0] if lines else type(err).__name__)[:200]


def env_identity(env: gym.Env) -> dict[str, Any]:
    """What a checkpoint must match to be loaded for ``env``: the observation shapes and,
    for a dvrl env, the dataset's content hash."""
    base = env.unwrapped
    space = base.observation_space
    identity: dict[str, Any] = {"observation": {k: list(space[k].shape) for k in space}
                                if isinstance(space, gym.spaces.Dict) else list(space.shape)}
    dataset = getattr(base, "dataset", None)
    if dataset is not None:
        identity["dataset"] = dataset.name
        identity["fingerprint"] = dataset.fingerprint()
    return identity


def check_env_identity(path: str | os.PathLike, saved: dict, env: gym.Env) -> None:
    current = env_identity(env)
    if saved.get("observation") != current["observation"]:
        raise CheckpointError(f"{path} was saved for observations {saved.get('observation')}, "
                              f"but this env's are {current['observation']}; load it with the "
                              "env (and options, such as batch_size) it was trained on.")
    if "fingerprint" in saved and saved["fingerprint"] != current.get("fingerprint"):
        held = f"{current.get('dataset')!r} with {str(current.get('fingerprint'))[:12]}"
        raise CheckpointError(f"{path} was trained on dataset {saved.get('dataset')!r} with "
                              f"content hash {saved['fingerprint'][:12]}, but this env holds "
                              f"{held}; load it with the data (and noise_rate, data_seed) it "
                              "was trained on.")


def saved_env_state(env) -> dict | None:
    """``env.state_dict()`` where the env has one (dvrl's envs do), else None: an agent on
    another env resumes from a fresh reset rather than exactly."""
    state_dict = getattr(env, "state_dict", None)
    return state_dict() if callable(state_dict) else None


# ---- the global RNGs, for agents (Stable-Baselines3) that draw from them -----------------

def global_rng_state() -> dict[str, Any]:
    """Python's, NumPy's and torch's global RNG states as tensors and numbers."""
    _, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state = {"torch": torch.get_rng_state(),
             "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "gauss": float(gauss)},
             "python": {"version": version, "internal": torch.tensor(internal, dtype=torch.int64),
                        "gauss_next": gauss_next}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_global_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"].tolist()), p["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def metadata_json(metadata: dict | None) -> str:
    """User metadata stored as JSON text, so that loading it needs no unpickling."""
    try:
        return json.dumps(metadata or {})
    except TypeError as err:
        raise TypeError(f"Checkpoint metadata must be JSON-serialisable: {err}") from None


def _is_sb3_zip(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            return "data" in archive.namelist()  # SB3 keeps its pickled parameters there
    except zipfile.BadZipFile:
        return False
