"""Read and write Hugging Face checkpoint directories (config, safetensors shards, tokenizer).

Reading validates before anything is used: the index's shards must all exist and open,
and a corrupt or truncated shard is reported by file name. Writing goes to a temporary
sibling directory that is renamed into place only when complete, so a failure never leaves
a half-written checkpoint at the destination.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".index.json")


class CheckpointError(ValueError):
    """A checkpoint directory is missing, incomplete, corrupt or inconsistent."""


def read_hf_config(hf_dir: Path) -> dict:
    path = Path(hf_dir) / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{hf_dir}: no config.json (is this a Hugging Face model dir?)")
    return read_config_file(path)


def read_config_file(path: Path) -> dict:
    """A config.json (any file name) as a dict; unreadable or non-object JSON is refused."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise CheckpointError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from e
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: must be a JSON object, got {type(config).__name__}")
    return config


def shard_files(hf_dir: Path) -> list[Path]:
    """The safetensors files of a checkpoint, all checked to exist."""
    hf_dir = Path(hf_dir)
    index = hf_dir / INDEX_FILE
    if index.is_file():
        weight_map = read_config_file(index).get("weight_map", {})
        if not isinstance(weight_map, dict) or not all(
            isinstance(name, str) for name in weight_map.values()
        ):
            raise CheckpointError(
                f"{index}: weight_map must be an object of tensor name -> shard file name"
            )
        files = [hf_dir / name for name in sorted(set(weight_map.values()))]
    elif (hf_dir / SINGLE_FILE).is_file():
        files = [hf_dir / SINGLE_FILE]
    else:
        raise CheckpointError(
            f"{hf_dir}: no {SINGLE_FILE} or {INDEX_FILE} (only safetensors checkpoints are read)"
        )
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise CheckpointError(f"{hf_dir}: shard(s) listed in {INDEX_FILE} are missing: {missing}")
    return files


def read_hf_state_dict(
    hf_dir: Path, keep: Callable[[str], bool] | None = None
) -> dict[str, torch.Tensor]:
    """Every tensor of a checkpoint, or only those whose name ``keep`` accepts (the others
    are never read from disk)."""
    state: dict[str, torch.Tensor] = {}
    for path in shard_files(hf_dir):
        try:
            with safe_open(str(path), framework="pt") as f:
                for key in f.keys():  # noqa: SIM118  (safe_open has no __iter__)
                    if keep is None or keep(key):
                        state[key] = f.get_tensor(key)
        except Exception as e:  # safetensors raises several types for damaged files
            raise CheckpointError(f"{path}: cannot read shard ({type(e).__name__}: {e})") from e
    return state


def copy_side_files(src: Path, dst: Path) -> None:
    """Tokenizer, generation config etc.: every non-weight file of an HF dir."""
    for path in Path(src).iterdir():
        if path.is_file() and not path.name.endswith(WEIGHT_SUFFIXES):
            shutil.copy2(path, Path(dst) / path.name)


def write_hf_weights(
    out_dir: Path, state: dict[str, torch.Tensor], max_shard_bytes: int = 5 * 2**30
) -> None:
    """Write ``state`` as safetensors shards (+ index when more than one)."""
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for name, t in state.items():
        nbytes = t.numel() * t.element_size()
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][name] = t.contiguous()
        size += nbytes
    if len(shards) == 1:
        save_file(shards[0], str(Path(out_dir) / SINGLE_FILE), metadata={"format": "pt"})
        return
    weight_map = {}
    for i, shard in enumerate(shards):
        fname = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, str(Path(out_dir) / fname), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(shard, fname))
    total = sum(t.numel() * t.element_size() for t in state.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (Path(out_dir) / INDEX_FILE).write_text(json.dumps(index, indent=2))


@contextmanager
def atomic_output_dir(out_dir: Path, overwrite: bool = False):
    """Yield a temporary directory that becomes ``out_dir`` only if the block succeeds."""
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise CheckpointError(f"{out_dir} exists and is not empty (pass --overwrite to replace)")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
