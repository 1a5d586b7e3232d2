"""Test tiers follow folders: tests/<tier>/... gets the ``<tier>`` marker.

Run one tier with ``pytest -m unit`` (seconds), ``-m dist``, ``-m vllm``, ``-m e2e``.
"""

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
