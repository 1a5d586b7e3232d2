"""The heavy half of a run's setup: the SFT warm-up (synthetic default), the three models,
the rollout model dir. What they start from is decided beforehand, by ``inputs.py``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import torch
import torch.distributed as dist

from prime_megatron.checkpoint import hf_io
from prime_megatron.checkpoint.convert import (
    InMemoryHFCheckpoint,
    load_megatron_model,
    save_megatron_checkpoint,
)
from prime_megatron.checkpoint.megatron_io import ModelCheckpointMeta
from prime_megatron.distributed.init import ParallelGroups, seed_all
from prime_megatron.distributed.rank import is_rank0, log0
from prime_megatron.models.arch import ModelArch
from prime_megatron.models.builder import build_gpt_model, padded_vocab_size
from prime_megatron.trainer.config import OptimConfig, TrainConfig
from prime_megatron.trainer.inputs import StartModel
from prime_megatron.trainer.models import Models
from prime_megatron.trainer.optim import ShardedAdamW
from prime_megatron.trainer.sft import (
    SHIPPED_DIR,
    find_shipped,
    install_shipped,
    recipe_matches,
    run_sft,
    sft_examples,
    write_recipe,
)


def ensure_start_checkpoint(
    start: StartModel, cfg: TrainConfig, parallel: ParallelGroups, tokenizer, encode
) -> bool:
    """Collective. Make ``start.path`` loadable: a planned SFT warm-up is trained now, unless
    the checkpoint there was made by the same recipe; any other start already is. Returns
    whether an SFT ran."""
    plan = start.sft
    if plan is None:
        return False
    ckpt = plan.checkpoint
    if recipe_matches(ckpt, plan.recipe):
        log0(f"reusing SFT checkpoint {ckpt}")
        return False
    if cfg.sft.use_shipped and _copy_shipped(plan.recipe, ckpt, cfg.sft.shipped_dir):
        return False
    log0(f"SFT: {cfg.sft.steps} steps on {len(plan.rows)} worked solutions -> {ckpt}")
    arch = ModelArch.from_hf_config(start.hf_config)
    seed_all(cfg.run.seed, parallel)
    model = build_gpt_model(arch, parallel, params_dtype=getattr(torch, cfg.model.dtype))
    examples = sft_examples(plan.rows, encode, tokenizer)
    # Capped at a rank's share of the batch: rows past it would be padding, computed in full.
    rows_per_rank = -(-cfg.sft.batch_size // parallel.dp_size)
    micro = min(rows_per_rank, cfg.batch.micro_batch_size * 4)
    run_sft(model, parallel, examples, cfg.sft.steps, cfg.sft.batch_size, cfg.sft.lr,
            micro, tokenizer.pad_token_id, cfg.run.seed,
            cfg.sft.grad_clip, show_progress=is_rank0(), vocab_size=arch.vocab_size)  # fmt: skip
    meta = ModelCheckpointMeta(
        hf_config=start.hf_config,
        padded_vocab_size=padded_vocab_size(arch.vocab_size, parallel.tp_size),
        params_dtype=cfg.model.dtype,
        saved_tp=parallel.tp_size,
        saved_pp=parallel.pp_size,
    )
    side = ckpt.parent / f".{ckpt.name}.tokenizer"
    if is_rank0():
        tokenizer.save_pretrained(side)
    dist.barrier()
    save_megatron_checkpoint(model, ckpt, meta, hf_side_files=side, overwrite=True)
    if is_rank0():
        write_recipe(ckpt, plan.recipe)
    dist.barrier()
    return True


def _copy_shipped(recipe: dict, ckpt: Path, shipped_dir: str) -> bool:
    """Collective. Copy the shipped checkpoint made by ``recipe`` (if any) to ``ckpt``."""
    shipped = find_shipped(recipe, Path(shipped_dir) if shipped_dir else SHIPPED_DIR)
    if shipped is None:
        return False
    if is_rank0():
        made = install_shipped(shipped, ckpt)
        log0(
            f"SFT: copied the shipped checkpoint {shipped.name} (same recipe; trained "
            f"{made.get('trained', '?')}) -> {ckpt}; sft.use_shipped=false trains it here"
        )
    dist.barrier()
    return True


def build_models(
    cfg: TrainConfig, parallel: ParallelGroups, start: StartModel,
    prm_start: StartModel | None = None,
) -> tuple[Models, ModelCheckpointMeta, ModelCheckpointMeta]:  # fmt: skip
    """Policy, PRM (if used) and the policy's reference (for the PRM or a KL term) from
    ``start``; a PRM with a ``prm_start`` of its own loads from that, with a frozen copy as
    its reference (``prm_ref``). Returns the models and the policy's and the PRM's start
    metadata (the same when they share a start)."""
    dtype = getattr(torch, cfg.model.dtype)
    load, meta = _model_loader(start, parallel, dtype)
    load_prm, prm_meta = _model_loader(prm_start, parallel, dtype) if prm_start else (load, meta)
    policy = load()
    models = Models(
        policy=policy, policy_opt=_optimizer(policy, parallel, cfg.policy_optim, cfg.run.steps)
    )
    if cfg.use_prm:
        models.prm = load_prm()
        models.prm_opt = _optimizer(models.prm, parallel, cfg.prm_optim, cfg.run.steps)
    if prm_start is not None:
        models.prm_ref = load_prm().requires_grad_(False)
    if cfg.loads_reference:
        models.ref = load().requires_grad_(False)
    return models, meta, prm_meta


def _model_loader(
    start: StartModel, parallel: ParallelGroups, dtype: torch.dtype
) -> tuple[Callable[[], torch.nn.Module], ModelCheckpointMeta]:
    """(a collective that builds and fills one model of this rank, the start's metadata)."""
    if start.format == "hf":
        # Read and mapped once for all three models; each gets its own copy of its shards.
        source = InMemoryHFCheckpoint(start.path, parallel.tp_size, parallel.pp_size, dtype)
        return (lambda: source.load(parallel)), source.meta
    meta = ModelCheckpointMeta.read(start.path)
    return (lambda: load_megatron_model(start.path, parallel, dtype)[0]), meta


def _optimizer(model, parallel: ParallelGroups, optim: OptimConfig, steps: int) -> ShardedAdamW:
    return ShardedAdamW(
        list(model.parameters()), parallel, lr=optim.lr, weight_decay=optim.weight_decay,
        betas=(optim.beta1, optim.beta2), grad_clip=optim.grad_clip,
        warmup_steps=optim.warmup_steps, total_steps=steps,
    )  # fmt: skip


def rollout_model_dir(out: Path, side_files: Path, config: dict, tokenizer=None) -> Path:
    """Collective. An HF dir with config + tokenizer only: vLLM starts with dummy weights and
    gets the policy's real ones by in-memory sync before the first rollout.

    The start's non-weight files, then ``tokenizer`` (the one the run uses) saved over them:
    a checkpoint made by an older version may carry an outdated copy. Rebuilt from scratch,
    so no file of an earlier start model survives in it.
    """
    if is_rank0():
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        if Path(side_files).is_dir():
            hf_io.copy_side_files(side_files, out)
        if tokenizer is not None:
            tokenizer.save_pretrained(out)
        (out / "config.json").write_text(json.dumps(config, indent=2))
    dist.barrier()
    return out
