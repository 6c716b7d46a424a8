"""The grid as cells: one cell is one (task, agent, seed), with everything that decides
its result, and a key hashed from exactly that, so a resumed run skips a cell only when
it was measured with the same settings."""

from __future__ import annotations

import dataclasses
import hashlib
import json

from dvrl_env.app.bench.spec import Spec, SpecError


@dataclasses.dataclass(frozen=True)
class Cell:
    """Plain data (picklable, sent to worker processes and Ray tasks)."""

    task: str
    env: str
    env_options: dict
    agent: str          # the label
    agent_name: str
    agent_options: dict
    seed: int
    noise_rate: float
    fits: int | None    # the fit budget (None: updates only)
    updates: int | None  # the cap on updates
    metrics: tuple[str, ...]
    imports: tuple[str, ...]
    kind: str = "agent"  # or "method" (hooks.method: no learning, no budget)
    probe: str | None = None
    probe_options: dict = dataclasses.field(default_factory=dict)

    @property
    def key(self) -> str:
        """12 hex digits of the settings' SHA-256 (the label and task name excluded: they
        are names, not settings). The hooks enter only when used, so an agent cell keeps
        the key it had before they existed."""
        settings = [self.env, self.env_options, self.agent_name, self.agent_options, self.seed,
                    self.noise_rate, self.fits, self.updates, list(self.metrics)]
        if self.kind != "agent":
            settings.append({"kind": self.kind})
        if self.probe is not None:
            settings.append({"probe": self.probe, "probe_options": self.probe_options})
        return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]

    @property
    def wants_cuda(self) -> bool:
        return str(self.env_options.get("device", "")).startswith("cuda") or \
            str(self.agent_options.get("device", "")).startswith("cuda")


def expand(spec: Spec) -> list[Cell]:
    """Every cell of the grid, tasks outermost, then agents, then seeds."""
    cells = []
    for task in spec.tasks:
        for entry in spec.agents:
            if entry.tasks is not None and task.name not in entry.tasks:
                continue
            # an agent's own updates cap it (the oracle fits no predictor, so only its
            # updates stop it); the fit budget applies to every agent alike
            updates = entry.updates if entry.updates is not None else spec.updates
            method = entry.kind == "method"
            noise = task.noise_rate if task.noise_rate is not None else spec.noise_rate
            for seed in spec.seeds:
                cells.append(Cell(task.name, task.env, dict(task.options), entry.label,
                                  entry.name, dict(entry.options), int(seed), noise,
                                  None if method else spec.fits, None if method else updates,
                                  spec.metrics, spec.imports, entry.kind,
                                  None if method else spec.probe,
                                  {} if method else dict(spec.probe_options)))
    seen: dict[str, Cell] = {}
    for cell in cells:
        first = seen.setdefault(cell.key, cell)
        if first is not cell:
            raise SpecError(f"Spec {spec.name!r}: the cells {_name(first)} and {_name(cell)} "
                            "have the same settings (two agents, methods or tasks with the "
                            "same name and options under other labels); remove one or change "
                            "its options.")
    return cells


def _name(cell: Cell) -> str:
    return f"(task {cell.task!r}, {cell.kind} {cell.agent!r}, seed {cell.seed})"
