"""Which architectures a config trains, read without loading any weights."""

from __future__ import annotations

from pathlib import Path

from prime_megatron.checkpoint.hf_io import CheckpointError, read_config_file, read_hf_config
from prime_megatron.checkpoint.megatron_io import META_FILE, ModelCheckpointMeta
from prime_megatron.models.arch import ModelArch
from prime_megatron.trainer.config import ModelConfig, TrainConfig


def resolve_model(cfg: TrainConfig, hf_config: Path | None = None) -> tuple[ModelArch, int, str]:
    """(the policy's architecture, padded vocab or 0 for the builder's padding, where it
    was read).

    ``hf_config`` (a config.json) wins over ``model.source``, so a plan needs no
    checkpoint on disk. A Megatron checkpoint's own padding is used as the trainer does.
    """
    if hf_config is not None:
        return ModelArch.from_hf_config(read_config_file(hf_config)), 0, str(hf_config)
    if cfg.model.source == "synthetic":
        return _synthetic_arch(cfg, cfg.model), 0, "model.* (synthetic)"
    return _given_arch(cfg.model.source, Path(cfg.model.path))


def resolve_prm_model(cfg: TrainConfig) -> ModelArch | None:
    """The PRM's own architecture (``prm_model``); None when it shares the policy's start."""
    if not cfg.separate_prm:
        return None
    prm = cfg.prm_model
    if prm.source == "synthetic":
        return _synthetic_arch(cfg, prm.synthetic_model(cfg.model))
    return _given_arch(prm.source, Path(prm.path))[0]


def _synthetic_arch(cfg: TrainConfig, model: ModelConfig) -> ModelArch:
    from prime_megatron.data.tokenizer import build_char_tokenizer
    from prime_megatron.trainer.inputs import synthetic_hf_config

    return ModelArch.from_hf_config(synthetic_hf_config(cfg, build_char_tokenizer(), model))


def _given_arch(source: str, path: Path) -> tuple[ModelArch, int, str]:
    """A model dir's architecture, padded vocab (0 for an HF dir) and where it was read."""
    if source == "megatron":
        if not (path / META_FILE).is_file():
            raise CheckpointError(
                f"{path}: no {META_FILE}; pass --hf-config with the model's config.json"
            )
        meta = ModelCheckpointMeta.read(path)
        return meta.arch, meta.padded_vocab_size, str(path / META_FILE)
    return ModelArch.from_hf_config(read_hf_config(path)), 0, str(path / "config.json")
