"""Optimizer step for a TP/PP/DP-sharded model: DP gradient sum, global-norm clipping, AdamW.

Why not Megatron's optimizer/DDP: on CPU its grad clipping and DDP buffers assume CUDA
tensors and streams (docs/cpu-platform.md); this small wrapper runs unchanged on
both. Losses are normalised globally before backward, so DP gradients are *summed*.
The gradient norm counts TP-sharded tensors over the TP group and replicated ones (norms)
once, then sums over pipeline stages: the same number on every rank.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist

from prime_megatron.distributed.init import ParallelGroups


class ShardedAdamW:
    def __init__(
        self,
        params: list[torch.nn.Parameter],
        parallel: ParallelGroups,
        lr: float,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        grad_clip: float = 0.0,
        warmup_steps: int = 0,
        total_steps: int = 0,
        min_lr_ratio: float | None = None,
    ) -> None:
        """``min_lr_ratio`` None: constant lr after warmup (PRIME); else cosine to that ratio."""
        self.params = [p for p in params if p.requires_grad]
        self.parallel = parallel
        self.base_lr, self.grad_clip = lr, grad_clip
        self.warmup_steps, self.total_steps, self.min_lr_ratio = (
            warmup_steps,
            total_steps,
            min_lr_ratio,
        )
        self.opt = torch.optim.AdamW(self.params, lr=lr, weight_decay=weight_decay, betas=betas)
        self.steps_taken = 0

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def lr_at(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.base_lr * (step + 1) / self.warmup_steps
        if self.min_lr_ratio is None or self.total_steps <= self.warmup_steps:
            return self.base_lr
        progress = min(1.0, (step - self.warmup_steps) / (self.total_steps - self.warmup_steps))
        ratio = self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (
            1 + math.cos(math.pi * progress)
        )
        return self.base_lr * ratio

    def step(self) -> dict[str, float]:
        """Sum grads over DP, clip by the global norm, update. Returns grad_norm and lr."""
        for p in self.params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        if self.parallel.dp_size > 1:
            for p in self.params:
                dist.all_reduce(p.grad, group=self.parallel.dp)
        norm = self.global_grad_norm()
        if self.grad_clip > 0 and norm > self.grad_clip:
            for p in self.params:
                p.grad.mul_(self.grad_clip / (norm + 1e-6))
        lr = self.lr_at(self.steps_taken)
        for group in self.opt.param_groups:
            group["lr"] = lr
        self.opt.step()
        self.zero_grad()
        self.steps_taken += 1
        return {"grad_norm": norm, "lr": lr}

    def global_grad_norm(self) -> float:
        sharded = torch.zeros((), dtype=torch.float64)
        replicated = torch.zeros((), dtype=torch.float64)
        for p in self.params:
            sq = p.grad.double().pow(2).sum()
            if getattr(p, "tensor_model_parallel", False):
                sharded += sq
            else:
                replicated += sq
        if self.parallel.tp_size > 1:
            dist.all_reduce(sharded, group=self.parallel.tp)
        total = sharded + replicated
        if self.parallel.pp_size > 1:
            dist.all_reduce(total, group=self.parallel.pp)
        return float(total.sqrt())

    def state_dict(self) -> dict:
        return {"opt": self.opt.state_dict(), "steps_taken": self.steps_taken}

    def load_state_dict(self, state: dict) -> None:
        self.opt.load_state_dict(state["opt"])
        self.steps_taken = state["steps_taken"]
