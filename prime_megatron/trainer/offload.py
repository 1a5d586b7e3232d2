"""Idle models wait in host memory between the phases of a step (``model.offload_idle``).

A PRIME step uses its models one phase at a time: none while vLLM generates, all of them
for the log-probs, only the PRM for its update, only the policy for its update and
the weight sync. On an accelerator, moving the idle models' weights, gradients and AdamW
moments to host memory frees device memory for vLLM's KV cache and the active model's
activations, at the price of host<->device copies at phase boundaries. On a CPU-only
machine compute and storage are the same device: the bookkeeping runs, the copies are
no-ops.

Why: residency follows the phases the step already times (``PhaseTimer``), so the
learning code stays free of memory management.
"""

from __future__ import annotations

import torch

from prime_megatron.trainer.models import Models
from prime_megatron.trainer.optim import ShardedAdamW
from prime_megatron.trainer.phases import MODEL_NAMES, PHASE_MODELS, Phase


class Offloader:
    """Moves this rank's model chunks (and their optimizers' state) between ``compute``
    and ``storage`` so that only the current phase's models sit on ``compute``."""

    def __init__(self, models: Models, compute: torch.device, storage: torch.device) -> None:
        opts = {"policy": models.policy_opt, "prm": models.prm_opt}
        self.entries = {
            name: (getattr(models, name), opts.get(name))
            for name in MODEL_NAMES
            if getattr(models, name) is not None
        }
        self.compute, self.storage = compute, storage
        self.resident = set(self.entries)  # models start on the compute device

    def enter(self, phase: Phase) -> None:
        """Make exactly ``phase``'s models resident on the compute device."""
        self._make_resident(set(PHASE_MODELS[Phase(phase)]) & set(self.entries))

    def restore(self) -> None:
        """Every model back on the compute device (before checkpointing or evaluation)."""
        self._make_resident(set(self.entries))

    def _make_resident(self, wanted: set[str]) -> None:
        if wanted == self.resident:
            return
        for name in sorted(self.resident - wanted):
            self._move(name, self.storage)
        for name in sorted(wanted - self.resident):
            self._move(name, self.compute)
        self.resident = wanted
        if self.compute.type == "cuda":
            torch.cuda.synchronize(self.compute)
            torch.cuda.empty_cache()

    def _move(self, name: str, device: torch.device) -> None:
        module, opt = self.entries[name]
        for p in module.parameters():
            p.data = p.data.to(device, non_blocking=True)
            if p.grad is not None:
                p.grad = p.grad.to(device, non_blocking=True)
        if opt is not None:
            _move_optimizer_state(opt, device)


def _move_optimizer_state(opt: ShardedAdamW, device: torch.device) -> None:
    for state in opt.opt.state.values():
        for key, value in state.items():
            # AdamW keeps its scalar step counter on the host unless it is capturable.
            if torch.is_tensor(value) and value.dim() > 0:
                state[key] = value.to(device, non_blocking=True)
