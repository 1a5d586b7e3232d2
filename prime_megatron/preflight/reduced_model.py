"""A reduced-depth copy of the start model as an HF dir: the first ``layers`` layers, the
embedding, final norm and output layer, the config (with ``num_hidden_layers`` cut) and
the tokenizer files. Three implementations can then be compared on a CPU within minutes,
whatever the model's depth: the per-layer mapping and the model's ends are all exercised.
"""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path

import torch

from prime_megatron.checkpoint import hf_io
from prime_megatron.checkpoint.convert import load_megatron_model, model_state, write_hf_checkpoint
from prime_megatron.checkpoint.mapping import megatron_to_hf
from prime_megatron.distributed.init import initialize_parallel
from prime_megatron.models.builder import layer_spec_kind
from prime_megatron.trainer.inputs import StartModel

_LAYER = re.compile(r"^model\.layers\.(\d+)\.")


def below_layer(name: str, layers: int) -> bool:
    """An HF tensor name that belongs to the first ``layers`` layers or to no layer."""
    match = _LAYER.match(name)
    return match is None or int(match.group(1)) < layers


def reduced_config(config: dict, layers: int) -> dict:
    out = {**config, "num_hidden_layers": layers}
    # One attention kind per layer; transformers refuses a list of another length.
    if isinstance(config.get("layer_types"), list):
        out["layer_types"] = config["layer_types"][:layers]
    return out


def write_reduced_model(start: StartModel, layers: int, out_dir: Path) -> Path:
    """``start``'s first ``layers`` layers as an HF dir at ``out_dir`` (created).

    An HF dir is read tensor by tensor, only what is kept; a Megatron checkpoint is loaded
    whole (TP=1, host memory for the full model) and mapped to HF names first.
    """
    keep = partial(below_layer, layers=layers)
    if start.format == "hf":
        state = hf_io.read_hf_state_dict(start.path, keep)
    else:
        state = {k: v for k, v in _megatron_as_hf(start.path).items() if keep(k)}
    config = reduced_config(start.hf_config, layers)
    write_hf_checkpoint(out_dir, config, state, start.side_files)
    return Path(out_dir)


def _megatron_as_hf(ckpt: Path) -> dict[str, torch.Tensor]:
    model, meta = load_megatron_model(ckpt, initialize_parallel(1, 1))
    return megatron_to_hf(model_state(model), meta.arch, layer_spec_kind())
