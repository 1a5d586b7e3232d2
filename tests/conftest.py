"""Test tiers follow folders: tests/<tier>/... gets the ``<tier>`` marker.

Run one tier with ``pytest -m unit`` (seconds), ``-m dist``, ``-m vllm``, ``-m e2e``.
The real-shape inputs (tests/real_shape_inputs.py) are session fixtures here, built on first
use and shared by every tier.
"""

import functools
import os
from pathlib import Path

import pytest

# Triton reads this when @triton.jit runs, so it must be set before any kernel module import.
os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TIERS = ("unit", "dist", "vllm", "e2e", "gpu")
TESTS_DIR = Path(__file__).parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        tier = Path(item.fspath).relative_to(TESTS_DIR).parts[0]
        if tier in TIERS:
            item.add_marker(getattr(pytest.mark, tier))
        if tier == "gpu":
            import torch

            if not torch.cuda.is_available():
                item.add_marker(pytest.mark.skip(reason="needs CUDA"))


# ---- real-shape inputs (tests/real_shape_inputs.py), shared by every tier ----------------


@pytest.fixture(scope="session")
def bpe_tokenizer():
    """style -> the byte-level BPE tokenizer (prime_megatron/data/bpe.py), built once."""
    from prime_megatron.data.bpe import build_bpe_tokenizer

    return functools.cache(build_bpe_tokenizer)


@pytest.fixture(scope="session")
def real_shape_dir(tmp_path_factory, bpe_tokenizer):
    """model name -> its reduced real-shape HF dir with tokenizer, written on first use."""
    from tests.real_shape_inputs import TOKENIZER_STYLE, write_real_shape_dir

    base = tmp_path_factory.mktemp("real_shapes")

    @functools.cache
    def make(name: str) -> Path:
        return write_real_shape_dir(base / name, name, bpe_tokenizer(TOKENIZER_STYLE[name]))

    return make


@pytest.fixture(scope="session")
def eurus_parquet(tmp_path_factory) -> Path:
    """A small Eurus-2-RL-Data-style math parquet (tests/real_shape_inputs.py)."""
    from tests.real_shape_inputs import write_eurus_parquet

    return write_eurus_parquet(tmp_path_factory.mktemp("eurus") / "math.parquet")
