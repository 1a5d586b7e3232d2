"""HF <-> Megatron checkpoint conversion (the logic behind ``tools/convert_*.py``).

Conversion runs in one process: the torch_dist format stores global tensors, so the layout
a checkpoint is later trained at is chosen when it is loaded. ``--tp`` only fixes the vocab
padding (a multiple of 128 x tp, Megatron's convention) and is checked against the heads
and query groups; the padded size then works for every TP that divides it.

Everything is validated before the first byte is written: unreadable shards, missing or
unexpected tensors and shape mismatches raise ``CheckpointError`` / ``MappingError``, and
outputs appear at their destination only when complete.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from prime_megatron.checkpoint import hf_io
from prime_megatron.checkpoint.mapping import check_shapes, hf_to_megatron, megatron_to_hf
from prime_megatron.checkpoint.megatron_io import (
    ModelCheckpointMeta,
    atomic_checkpoint_dir,
    load_model_shards,
    save_model_shards,
)
from prime_megatron.checkpoint.rules import MappingError
from prime_megatron.distributed.rank import is_rank0
from prime_megatron.models.arch import InvalidModelConfigError, ModelArch, UnsupportedModelError
from prime_megatron.models.builder import build_gpt_model, layer_spec_kind, padded_vocab_size

HF_SIDE_DIR = "hf"  # tokenizer/config files kept with a Megatron checkpoint


def model_state(model) -> dict[str, torch.Tensor]:
    """A model's tensors without Transformer-Engine/Megatron ``_extra_state`` entries."""
    return {k: v for k, v in model.state_dict().items() if not k.endswith("_extra_state")}


def _single_process_groups():
    import torch.distributed as dist

    from prime_megatron.distributed.init import initialize_parallel

    if dist.is_initialized() and dist.get_world_size() > 1:
        raise RuntimeError("checkpoint conversion runs in one process; launch it without torchrun")
    return initialize_parallel(1, 1)


def convert_hf_to_megatron(
    hf_dir: Path,
    out_dir: Path,
    tp: int = 1,
    pp: int = 1,
    dtype: torch.dtype | None = None,
    overwrite: bool = False,
) -> ModelCheckpointMeta:
    hf_dir = Path(hf_dir)
    config = hf_io.read_hf_config(hf_dir)
    arch = arch_of(config, hf_dir / "config.json")
    arch.check_layout(tp, pp)
    hf_state = hf_io.read_hf_state_dict(hf_dir)
    check_hf_tensors(hf_state, config, hf_dir)
    dtype = dtype or next(iter(hf_state.values())).dtype
    padded = padded_vocab_size(arch.vocab_size, tp)
    model = build_gpt_model(
        arch, _single_process_groups(), params_dtype=dtype, padded_vocab=padded, init_weights=False
    )
    load_full_hf_state(model, hf_state, arch, padded, dtype, str(hf_dir))
    meta = ModelCheckpointMeta(
        hf_config=config,
        padded_vocab_size=padded,
        params_dtype=str(dtype).removeprefix("torch."),
        saved_tp=tp,
        saved_pp=pp,
    )
    save_megatron_checkpoint(model, out_dir, meta, hf_side_files=hf_dir, overwrite=overwrite)
    return meta


class InMemoryHFCheckpoint:
    """An HF model dir as a training start, without a converted copy on disk.

    The weights are read and mapped to full Megatron tensors once (the converter's rules,
    so the result is bit-identical to converting first); ``load`` then builds this rank's
    chunk for a TP/PP layout and fills it with its shards. Every rank holds the full mapped
    model in host memory while the models are built: for large models on many ranks per
    node, converting once with ``tools/convert_hf_to_megatron.py`` costs less memory.
    """

    def __init__(self, hf_dir: Path, tp: int, pp: int, dtype: torch.dtype) -> None:
        self.hf_dir = Path(hf_dir)
        config = hf_io.read_hf_config(self.hf_dir)
        arch = arch_of(config, self.hf_dir / "config.json")
        arch.check_layout(tp, pp)
        padded = padded_vocab_size(arch.vocab_size, tp)
        self.meta = ModelCheckpointMeta(
            hf_config=config,
            padded_vocab_size=padded,
            params_dtype=str(dtype).removeprefix("torch."),
            saved_tp=tp,
            saved_pp=pp,
        )
        hf_state = hf_io.read_hf_state_dict(self.hf_dir)
        check_hf_tensors(hf_state, config, self.hf_dir)
        self.full = hf_to_megatron(hf_state, arch, padded, layer_spec_kind())

    def load(self, parallel):
        """This rank's model chunk for ``parallel``, with its own copy of the weights."""
        from prime_megatron.resharding.scatter import load_full_tensors

        meta = self.meta
        model = build_gpt_model(
            meta.arch, parallel, params_dtype=meta.dtype, padded_vocab=meta.padded_vocab_size,
            init_weights=False,
        )  # fmt: skip
        try:
            load_full_tensors(model, self.full, parallel)
        except MappingError as e:
            raise MappingError(f"{self.hf_dir}: {e}") from e
        return model


def check_hf_tensors(hf_state: dict[str, torch.Tensor], config: dict, source: Path) -> None:
    """Every HF tensor is floating point and has the shape ``config`` implies, checked before
    mapping: an embedding shorter than vocab_size would be padded with zero rows, and a
    mis-shaped projection would fail deep inside a reshape."""
    ints = [f"{k} ({t.dtype})" for k, t in hf_state.items() if not t.is_floating_point()]
    if ints:
        raise MappingError(f"{source}: weights must be floating point, got {_first(ints)}")
    expected = _hf_shapes(config)
    bad = [
        f"{k} {tuple(t.shape)}, config implies {tuple(expected[k])}"
        for k, t in hf_state.items()
        if k in expected and t.shape != expected[k]
    ]
    if bad:
        raise MappingError(f"{source}: shape mismatch with config.json: {_first(bad)}")


def _first(items: list[str], limit: int = 3) -> str:
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return "; ".join(items[:limit]) + more


def _hf_shapes(config: dict) -> dict[str, torch.Size]:
    """The tensor shapes of the HF model ``config`` describes (built on the meta device:
    no memory, no initialisation)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    if "model_type" not in config:  # the mapping's own shape check still runs
        return {}
    fields = {k: v for k, v in config.items() if k != "model_type"}
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(
            AutoConfig.for_model(config["model_type"], **fields)
        )
    return {k: v.shape for k, v in model.state_dict().items()}


def load_full_hf_state(
    model,
    hf_state: dict[str, torch.Tensor],
    arch: ModelArch,
    padded_vocab: int,
    dtype: torch.dtype,
    source: str,
) -> None:
    """Load a whole HF state dict into a TP=1, PP=1 ``model`` as ``dtype``, on the device each
    tensor already lives on; ``MappingError`` naming ``source`` on a missing, unexpected or
    mis-shaped tensor."""
    meg_state = hf_to_megatron(hf_state, arch, padded_vocab, layer_spec_kind())
    current = model_state(model)
    check_shapes(meg_state, {k: v.shape for k, v in current.items()}, source)
    # assign: the mapped tensors become the parameters (no second copy of the model).
    state = {k: v.to(current[k].device, dtype) for k, v in meg_state.items()}
    model.load_state_dict(state, strict=False, assign=True)


def arch_of(config: dict, source: Path) -> ModelArch:
    """``ModelArch.from_hf_config`` with its errors naming the file or dir they are about."""
    try:
        return ModelArch.from_hf_config(config)
    except (InvalidModelConfigError, UnsupportedModelError) as e:
        raise type(e)(f"{source}: {e}") from e


def save_megatron_checkpoint(
    model, out_dir: Path, meta: ModelCheckpointMeta, hf_side_files: Path | None, overwrite: bool
) -> None:
    """Collective: shards + metadata (+ tokenizer/config side files), atomically."""
    with atomic_checkpoint_dir(Path(out_dir), overwrite=overwrite) as tmp:
        save_model_shards(model, tmp)
        if is_rank0():
            meta.write(tmp)
            side = tmp / HF_SIDE_DIR
            side.mkdir()
            if hf_side_files is not None:
                hf_io.copy_side_files(hf_side_files, side)
            # config + tokenizer make ``hf/`` a model dir vLLM can start from (dummy weights).
            (side / "config.json").write_text(json.dumps(meta.hf_config, indent=2))


def convert_megatron_to_hf(ckpt_dir: Path, out_dir: Path, overwrite: bool = False) -> None:
    ckpt_dir = Path(ckpt_dir)
    model, meta = load_megatron_model(ckpt_dir, _single_process_groups())
    hf_state = megatron_to_hf(model_state(model), meta.arch, layer_spec_kind())
    write_hf_checkpoint(out_dir, meta.hf_config, hf_state, ckpt_dir / HF_SIDE_DIR, overwrite)


def load_megatron_model(ckpt_dir: Path, parallel, params_dtype: torch.dtype | None = None):
    """Collective: build this rank's model chunk for ``parallel`` and load the checkpoint into it.

    Returns ``(model, meta)``. Any layout works whose TP divides the padded vocab size.
    """
    meta = ModelCheckpointMeta.read(Path(ckpt_dir))
    model = build_gpt_model(
        meta.arch,
        parallel,
        params_dtype=params_dtype or meta.dtype,
        padded_vocab=meta.padded_vocab_size,
        init_weights=False,
    )
    load_model_shards(model, Path(ckpt_dir))
    return model, meta


def write_hf_checkpoint(
    out_dir: Path,
    hf_config: dict,
    hf_state: dict[str, torch.Tensor],
    side_files: Path | None,
    overwrite: bool = False,
) -> None:
    with hf_io.atomic_output_dir(Path(out_dir), overwrite=overwrite) as tmp:
        if side_files is not None and Path(side_files).is_dir():
            hf_io.copy_side_files(side_files, tmp)
        (tmp / "config.json").write_text(json.dumps(hf_config, indent=2))
        hf_io.write_hf_weights(tmp, hf_state)
