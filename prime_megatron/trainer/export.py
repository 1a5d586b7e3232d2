"""End-of-run outputs: the final policy (and implicit PRM) as HF checkpoints, metric plots."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist

from prime_megatron.checkpoint.convert import write_hf_checkpoint
from prime_megatron.checkpoint.megatron_io import ModelCheckpointMeta
from prime_megatron.console import say
from prime_megatron.distributed.init import ParallelGroups
from prime_megatron.distributed.rank import is_rank0
from prime_megatron.resharding import iter_full_hf_tensors
from prime_megatron.run_layout import RunLayout
from prime_megatron.trainer.config import RunConfig
from prime_megatron.trainer.models import Models
from prime_megatron.trainer.plotting import plot_metrics


def export_hf(
    model: torch.nn.Module,
    parallel: ParallelGroups,
    meta: ModelCheckpointMeta,
    layout: RunLayout,
    directory: Path,
    what: str,
) -> None:
    """Collective: gather the sharded ``model`` into the HF checkpoint ``directory`` (rank 0
    writes), with the tokenizer files of ``<run>/rollout_model``."""
    state = {name: t.clone() for name, t in iter_full_hf_tensors(model, parallel, meta.arch)}
    if is_rank0():
        # The tokenizer and generation files vLLM ran with travel with the weights.
        write_hf_checkpoint(directory, meta.hf_config, state, layout.rollout_model, overwrite=True)
        say(f"exported {what} to {directory}")
    dist.barrier()


def export_final_models(
    run: RunConfig, models: Models, parallel, meta, layout, prm_meta=None
) -> None:
    """Collective: the final policy (``run.export_hf``) and the implicit PRM
    (``run.export_prm_hf``, when the run has one), each at its own shape (``prm_meta``:
    the PRM's, when it differs from the policy's ``meta``)."""
    if run.export_hf:
        export_hf(models.policy, parallel, meta, layout, layout.policy_hf, "the final policy")
    if run.export_prm_hf and models.prm is not None:
        export_hf(models.prm, parallel, prm_meta or meta, layout, layout.prm_hf,
                  "the implicit PRM")  # fmt: skip


def plot_run(layout: RunLayout) -> None:
    if is_rank0():
        say(f"wrote {plot_metrics(layout.root)}")
