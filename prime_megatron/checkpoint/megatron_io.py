"""Megatron model checkpoints: megatron-core ``dist_checkpointing`` (torch_dist format).

Why this format: every tensor is stored once with its *global* shape and each rank writes
and reads only its own shards, so a checkpoint saved at one TP/PP layout loads at any other
(for which the padded vocab size divides). Next to the shards, ``prime_megatron.json``
records the architecture, the original HF config (to write HF checkpoints back), the padded
vocab size and the layout it was saved at.

A save goes to ``<dir>.partial`` and is renamed into place after every rank finished, so a
crash mid-save leaves any previous checkpoint at ``<dir>`` untouched.
"""

from __future__ import annotations

import json
import shutil
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from prime_megatron.checkpoint.hf_io import CheckpointError
from prime_megatron.distributed.rank import is_rank0
from prime_megatron.models.arch import ModelArch

META_FILE = "prime_megatron.json"
FORMAT_VERSION = 1


@dataclass
class ModelCheckpointMeta:
    hf_config: dict
    padded_vocab_size: int
    params_dtype: str
    saved_tp: int
    saved_pp: int
    format_version: int = FORMAT_VERSION

    @property
    def arch(self) -> ModelArch:
        return ModelArch.from_hf_config(self.hf_config)

    @property
    def dtype(self) -> torch.dtype:
        return getattr(torch, self.params_dtype)

    def write(self, directory: Path) -> None:
        (Path(directory) / META_FILE).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def read(cls, directory: Path) -> ModelCheckpointMeta:
        path = Path(directory) / META_FILE
        if not path.is_file():
            raise CheckpointError(
                f"{directory}: not a prime_megatron checkpoint (no {META_FILE}); "
                "create one with tools/convert_hf_to_megatron.py"
            )
        meta = cls(**json.loads(path.read_text()))
        if meta.format_version != FORMAT_VERSION:
            raise CheckpointError(
                f"{path}: format_version {meta.format_version}, this code reads {FORMAT_VERSION}"
            )
        return meta


def _barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


@contextmanager
def atomic_checkpoint_dir(out_dir: Path, overwrite: bool = True):
    """Collective: every rank writes into the yielded dir; it replaces ``out_dir`` at the end."""
    out_dir = Path(out_dir)
    partial = out_dir.with_name(out_dir.name + ".partial")
    if not overwrite and out_dir.exists() and any(out_dir.iterdir()):
        raise CheckpointError(f"{out_dir} exists and is not empty (pass --overwrite to replace)")
    if is_rank0():
        shutil.rmtree(partial, ignore_errors=True)  # leftovers of a crashed save
        partial.mkdir(parents=True)
    _barrier()
    yield partial
    _barrier()
    if is_rank0():
        old = out_dir.with_name(out_dir.name + ".old")
        if out_dir.exists():
            out_dir.rename(old)
        partial.rename(out_dir)
        shutil.rmtree(old, ignore_errors=True)
    _barrier()


def save_model_shards(model, directory: Path) -> None:
    """Collective: write this rank's shards of ``model`` into ``directory``."""
    from megatron.core import dist_checkpointing

    dist_checkpointing.save(model.sharded_state_dict(), str(directory))


def load_failure(error: BaseException) -> str:
    """What made a load fail, on one line: the first rank's own error when torch's
    ``CheckpointException`` wraps one traceback per rank."""
    failures = getattr(error, "failures", None)
    if failures:
        error = next(iter(failures.values()))[0]
    return f"{type(error).__name__}: {' '.join(str(error).split())}"


def load_model_shards(model, directory: Path) -> None:
    """Collective: fill ``model`` (any layout) from a torch_dist checkpoint directory."""
    from megatron.core import dist_checkpointing
    from torch.distributed.checkpoint.api import CheckpointException

    directory = Path(directory)
    if not (directory / "metadata.json").is_file():
        raise CheckpointError(f"{directory}: no Megatron dist checkpoint (metadata.json missing)")
    try:
        state = dist_checkpointing.load(model.sharded_state_dict(), str(directory))
    # Megatron raises assorted types for unreadable or mismatched shards; torch's
    # CheckpointException (a shape mismatch, say) derives from BaseException only.
    except (Exception, CheckpointException) as e:
        raise CheckpointError(f"{directory}: cannot load ({load_failure(e)})") from e
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("_extra_state")]
    if missing or unexpected:
        raise CheckpointError(f"{directory}: missing {missing}, unexpected {unexpected}")
