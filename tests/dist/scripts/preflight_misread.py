"""tools/preflight.py with a builder that misreads the model's config (RoPE base 10x), as a
mapping bug would: Megatron's logits then differ from transformers'. args: the tool's."""

import dataclasses
import runpy
import sys
from pathlib import Path

from prime_megatron.models.arch import ModelArch

_read = ModelArch.from_hf_config.__func__


def misread(cls, config) -> ModelArch:
    arch = _read(cls, config)
    return dataclasses.replace(arch, rope_theta=arch.rope_theta * 10)


ModelArch.from_hf_config = classmethod(misread)
tool = Path(__file__).resolve().parents[3] / "tools" / "preflight.py"
sys.argv = [str(tool), *sys.argv[1:]]
runpy.run_path(str(tool), run_name="__main__")
