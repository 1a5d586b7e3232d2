"""End-of-run outputs: the final policy as an HF checkpoint, and metric plots."""

from __future__ import annotations

import torch
import torch.distributed as dist

from prime_megatron.checkpoint.convert import write_hf_checkpoint
from prime_megatron.checkpoint.megatron_io import ModelCheckpointMeta
from prime_megatron.console import say
from prime_megatron.distributed.init import ParallelGroups
from prime_megatron.distributed.rank import is_rank0
from prime_megatron.resharding import iter_full_hf_tensors
from prime_megatron.run_layout import RunLayout
from prime_megatron.trainer.plotting import plot_metrics


def export_policy(
    policy: torch.nn.Module, parallel: ParallelGroups, meta: ModelCheckpointMeta, layout: RunLayout
) -> None:
    """Collective: gather the sharded policy into ``<run>/policy_hf`` (rank 0 writes), with
    the tokenizer files of ``<run>/rollout_model``."""
    state = {name: t.clone() for name, t in iter_full_hf_tensors(policy, parallel, meta.arch)}
    if is_rank0():
        # The tokenizer and generation files vLLM ran with travel with the weights.
        write_hf_checkpoint(
            layout.policy_hf, meta.hf_config, state, layout.rollout_model, overwrite=True
        )
        say(f"exported the final policy to {layout.policy_hf}")
    dist.barrier()


def plot_run(layout: RunLayout) -> None:
    if is_rank0():
        say(f"wrote {plot_metrics(layout.root)}")
