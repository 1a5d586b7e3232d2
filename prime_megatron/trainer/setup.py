"""Everything a run needs before its first step: data, tokenizer, the starting checkpoint
(SFT for the synthetic default), the three models, the rollout engine.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import torch
import torch.distributed as dist

from prime_megatron.checkpoint.convert import (
    HF_SIDE_DIR,
    load_megatron_model,
    save_megatron_checkpoint,
)
from prime_megatron.checkpoint.megatron_io import ModelCheckpointMeta, is_rank0
from prime_megatron.data import synthetic
from prime_megatron.distributed.init import ParallelGroups, seed_all
from prime_megatron.models.arch import ModelArch
from prime_megatron.models.builder import build_gpt_model, padded_vocab_size
from prime_megatron.models.hf_factory import hf_config
from prime_megatron.trainer.config import TrainConfig
from prime_megatron.trainer.optim import ShardedAdamW
from prime_megatron.trainer.sft import recipe_matches, run_sft, sft_examples, write_recipe
from prime_megatron.trainer.update import Models


def log0(message: str) -> None:
    if is_rank0():
        print(message, flush=True)


def prepare_synthetic_data(cfg: TrainConfig, run_dir: Path) -> list[dict]:
    """Write the task's RL train/held-out jsonl files (rank 0); return the SFT rows."""
    s = cfg.synthetic
    train, heldout = synthetic.make_splits(s.train_prompts, s.heldout_prompts, s, cfg.run.seed)
    data_dir = run_dir / "data"
    train_file, heldout_file = data_dir / "train.jsonl", data_dir / "heldout.jsonl"
    if is_rank0():
        data_dir.mkdir(parents=True, exist_ok=True)
        synthetic.write_jsonl(
            (synthetic.rl_row(p, i, "train") for i, p in enumerate(train)), str(train_file)
        )
        synthetic.write_jsonl(
            (synthetic.rl_row(p, i, "heldout") for i, p in enumerate(heldout)), str(heldout_file)
        )
    dist.barrier()
    cfg.data.train_files, cfg.data.val_files = [str(train_file)], [str(heldout_file)]
    cfg.data.prompt_format = "chat"
    return synthetic.sft_rows(train, s, cfg.run.seed)


def synthetic_hf_config(cfg: TrainConfig, tokenizer) -> dict:
    m = cfg.model
    config = hf_config(
        "Qwen2ForCausalLM",
        vocab_size=len(tokenizer),
        hidden_size=m.hidden_size,
        intermediate_size=m.ffn_hidden_size,
        num_hidden_layers=m.num_layers,
        num_attention_heads=m.num_heads,
        num_key_value_heads=m.num_heads,
        head_dim=m.hidden_size // m.num_heads,
        max_position_embeddings=m.max_position_embeddings,
        rope_theta=10000.0,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return config.to_dict()


def sft_checkpoint(
    cfg: TrainConfig, groups: ParallelGroups, tokenizer, sft_rows: list[dict], encode
) -> Path:
    """The synthetic model's SFT checkpoint: reused if its recipe matches, else trained."""
    ckpt = Path(cfg.sft.checkpoint)
    hf_cfg = synthetic_hf_config(cfg, tokenizer)
    recipe = {
        "model": asdict(cfg.model),
        "sft": asdict(cfg.sft),
        "synthetic": asdict(cfg.synthetic),
        "seed": cfg.run.seed,
        "vocab": len(tokenizer),
    }
    recipe["sft"].pop("checkpoint")
    recipe["model"].pop("offload_idle")  # where idle weights wait does not change them
    if recipe_matches(ckpt, recipe):
        log0(f"reusing SFT checkpoint {ckpt}")
        return ckpt
    log0(f"SFT: {cfg.sft.steps} steps on {len(sft_rows)} worked solutions -> {ckpt}")
    arch = ModelArch.from_hf_config(hf_cfg)
    seed_all(cfg.run.seed, groups)
    dtype = getattr(torch, cfg.model.dtype)
    model = build_gpt_model(arch, groups, params_dtype=dtype)
    examples = sft_examples(sft_rows, encode, tokenizer)
    run_sft(model, groups, examples, cfg.sft.steps, cfg.sft.batch_size, cfg.sft.lr,
            cfg.batch.micro_batch_size * 4, tokenizer.pad_token_id, cfg.run.seed,
            cfg.sft.grad_clip, log0)  # fmt: skip
    meta = ModelCheckpointMeta(
        hf_config=hf_cfg,
        padded_vocab_size=padded_vocab_size(arch.vocab_size, groups.tp_size),
        params_dtype=cfg.model.dtype,
        saved_tp=groups.tp_size,
        saved_pp=groups.pp_size,
    )
    side = ckpt.parent / f".{ckpt.name}.tokenizer"
    if is_rank0():
        tokenizer.save_pretrained(side)
    dist.barrier()
    save_megatron_checkpoint(model, ckpt, meta, hf_side_files=side, overwrite=True)
    if is_rank0():
        write_recipe(ckpt, recipe)
    dist.barrier()
    return ckpt


def build_models(
    cfg: TrainConfig, groups: ParallelGroups, ckpt: Path
) -> tuple[Models, ModelCheckpointMeta]:
    """Policy, PRM (if used) and reference (for the PRM or a KL term) from one checkpoint."""
    dtype = getattr(torch, cfg.model.dtype)
    policy, meta = load_megatron_model(ckpt, groups, dtype)
    if meta.arch.tie_word_embeddings and groups.pp_size > 1:
        raise NotImplementedError(
            "training a model with tied embeddings under pipeline parallelism is not "
            "supported yet (the embedding gradient is not synchronised across stages)"
        )
    models = Models(
        policy=policy, policy_opt=_optimizer(policy, groups, cfg.policy_optim, cfg.run.steps)
    )
    if cfg.use_prm:
        models.prm = load_megatron_model(ckpt, groups, dtype)[0]
        models.prm_opt = _optimizer(models.prm, groups, cfg.prm_optim, cfg.run.steps)
    if cfg.loads_reference:
        models.ref = load_megatron_model(ckpt, groups, dtype)[0].requires_grad_(False)
    return models, meta


def _optimizer(model, groups: ParallelGroups, o, steps: int) -> ShardedAdamW:
    return ShardedAdamW(
        list(model.parameters()), groups, lr=o.lr, weight_decay=o.weight_decay,
        betas=(o.beta1, o.beta2), grad_clip=o.grad_clip, warmup_steps=o.warmup_steps,
        total_steps=steps,
    )  # fmt: skip


def rollout_model_dir(out: Path, ckpt: Path, meta: ModelCheckpointMeta) -> Path:
    """Collective. An HF dir with config + tokenizer only: vLLM starts with dummy weights and
    gets the policy's real ones by in-memory sync before the first rollout."""
    if is_rank0():
        out.mkdir(parents=True, exist_ok=True)
        side = ckpt / HF_SIDE_DIR
        for f in side.iterdir() if side.is_dir() else []:
            (out / f.name).write_bytes(f.read_bytes())
        (out / "config.json").write_text(json.dumps(meta.hf_config, indent=2))
    dist.barrier()
    return out
