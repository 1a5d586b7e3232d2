"""RL checkpoints: everything needed to continue a run exactly as if it never stopped.

Layout of ``<run>/checkpoints/step_000020/``:
  policy/, prm/        model shards (torch_dist; any TP/PP layout can load them)
  rank_00000.pt ...    per rank: optimizer states, RNG states (python, numpy, torch, the
                       tensor-parallel tracker), the rank's own trainer data (the PRM's
                       replay batches)
  trainer_state.json   step, the collector (sampler position, carry-over buffer), layout,
                       weight version
A save is written under ``step_N.partial`` and renamed when every rank has finished, so a
crash mid-save leaves the previous checkpoint loadable; only the ``keep_last`` newest
complete checkpoints are kept. Optimizer states are per rank: resuming at another layout
loads the weights and restarts the optimizer moments (with a warning).
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from prime_megatron.checkpoint.megatron_io import (
    atomic_checkpoint_dir,
    load_model_shards,
    save_model_shards,
)
from prime_megatron.distributed.rank import is_rank0

STATE_FILE = "trainer_state.json"
_STEP_DIR = re.compile(r"^step_(\d{6})$")
# Fault injection for the crash-mid-save test: PRIME_FAULT_INJECT=save:<step> dies after the
# policy shards of that step's checkpoint are written, before the rest.
FAULT_ENV = "PRIME_FAULT_INJECT"


def rng_state() -> dict[str, Any]:
    from megatron.core.tensor_parallel.random import get_cuda_rng_tracker

    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "tracker": get_cuda_rng_tracker().get_states(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    from megatron.core.tensor_parallel.random import get_cuda_rng_tracker

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    get_cuda_rng_tracker().set_states(state["tracker"])


def step_dir(root: Path, step: int) -> Path:
    return Path(root) / f"step_{step:06d}"


def complete_checkpoints(root: Path) -> list[Path]:
    """Complete checkpoints under ``root``, oldest first."""
    if not Path(root).is_dir():
        return []
    found = [
        p for p in Path(root).iterdir() if _STEP_DIR.match(p.name) and (p / STATE_FILE).is_file()
    ]
    return sorted(found)


def unfinished_saves(root: Path) -> list[Path]:
    """``step_N.partial`` dirs under ``root``: saves a crash or kill interrupted."""
    return sorted(Path(root).glob("step_*.partial")) if Path(root).is_dir() else []


def save_checkpoint(
    root: Path,
    step: int,
    models: dict[str, torch.nn.Module],
    optimizers: dict[str, Any],
    trainer_state: dict[str, Any],
    keep_last: int,
    rank_state: dict[str, Any] | None = None,
) -> Path:
    """Collective. Writes ``root/step_<step>`` atomically and prunes old checkpoints.
    ``rank_state``: this rank's own data (tensors allowed), restored with an exact resume."""
    target = step_dir(root, step)
    with atomic_checkpoint_dir(target) as tmp:
        for i, (name, model) in enumerate(models.items()):
            if is_rank0():
                (tmp / name).mkdir()
            dist.barrier()
            save_model_shards(model, tmp / name)
            if i == 0 and os.environ.get(FAULT_ENV) == f"save:{step}":
                raise RuntimeError(
                    f"{FAULT_ENV}=save:{step}: simulated crash in the middle of a save"
                )
        per_rank = {
            "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
            "rng": rng_state(),
            "world_size": dist.get_world_size(),
            "layout": trainer_state["layout"],
            "trainer": rank_state or {},
        }
        torch.save(per_rank, tmp / f"rank_{dist.get_rank():05d}.pt")
        if is_rank0():
            (tmp / STATE_FILE).write_text(json.dumps(trainer_state))
    if is_rank0():
        for old in complete_checkpoints(root)[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)
    dist.barrier()
    return target


def load_checkpoint(
    path: Path, models: dict[str, torch.nn.Module], optimizers: dict[str, Any], layout: dict
) -> tuple[dict[str, Any], bool, dict[str, Any]]:
    """Collective. Restores models (any layout); optimizers and RNG if the layout matches.

    Returns (trainer_state, exact, rank_state): ``exact`` says optimizer/RNG states were
    restored; ``rank_state`` is what this rank saved as its own (empty unless exact).
    """
    path = Path(path)
    state = json.loads((path / STATE_FILE).read_text())
    for name, model in models.items():
        load_model_shards(model, path / name)
    rank_file = path / f"rank_{dist.get_rank():05d}.pt"
    exact = state["layout"] == layout and rank_file.is_file()
    rank_state: dict[str, Any] = {}
    if exact:
        per_rank = torch.load(rank_file, weights_only=False)
        for name, opt in optimizers.items():
            opt.load_state_dict(per_rank["optimizers"][name])
        set_rng_state(per_rank["rng"])
        rank_state = per_rank.get("trainer", {})
    return state, exact, rank_state


def collector_state(state: dict[str, Any], path: Path) -> dict[str, Any]:
    """The collector's entry of ``path``'s trainer state (as ``load_checkpoint`` returned
    it); a clear error for a checkpoint saved before the collector checkpointed itself."""
    if "collector" not in state:
        raise ValueError(
            f"{path}/{STATE_FILE} has no 'collector' entry (an older format with "
            "'sampler'/'buffer'): resume it with the prime_megatron that wrote it"
        )
    return state["collector"]
