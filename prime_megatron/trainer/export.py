"""End-of-run outputs: the final policy as an HF checkpoint, and metric plots."""

from __future__ import annotations

import torch.distributed as dist

from prime_megatron.checkpoint.convert import write_hf_checkpoint
from prime_megatron.checkpoint.megatron_io import is_rank0
from prime_megatron.resharding import iter_full_hf_tensors
from prime_megatron.trainer.plotting import plot_metrics


def export_policy(trainer) -> None:
    """Collective: gather the sharded policy into ``<run>/policy_hf`` (rank 0 writes), with
    the tokenizer files of ``<run>/rollout_model``."""
    state = {
        name: t.clone()
        for name, t in iter_full_hf_tensors(
            trainer.models.policy, trainer.parallel, trainer.meta.arch
        )
    }
    if is_rank0():
        out = trainer.layout.policy_hf
        # The tokenizer and generation files vLLM ran with travel with the weights.
        side = trainer.layout.rollout_model
        write_hf_checkpoint(out, trainer.meta.hf_config, state, side, overwrite=True)
        print(f"exported the final policy to {out}", flush=True)
    dist.barrier()


def plot_run(trainer) -> None:
    if is_rank0():
        print(f"wrote {plot_metrics(trainer.layout.root)}", flush=True)
