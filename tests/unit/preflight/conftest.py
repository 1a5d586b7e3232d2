"""A job of one's own, tiny: a random HF model with the character tokenizer, jsonl rows of
arithmetic and a YAML naming both; and ``tools/preflight.py`` as a module."""

import importlib
import json
import sys
from pathlib import Path

import pytest

from prime_megatron.data.tokenizer import build_char_tokenizer
from prime_megatron.models.hf_factory import hf_config, save_random_hf_model

REPO = Path(__file__).resolve().parents[3]
ROWS = [{"question": "47+38", "answer": "85"}, {"question": "12+5", "answer": "17"},
        {"question": "3+9", "answer": "12"}]  # fmt: skip


def save_model(out: Path, **shape) -> Path:
    """A random HF model (``hf_config``'s tiny shape, changed by ``shape``) with the
    character tokenizer, which spells the rows' arithmetic one token per character."""
    return save_random_hf_model(out, hf_config(**shape), tokenizer=build_char_tokenizer())


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    return save_model(tmp_path_factory.mktemp("preflight") / "model")


def write_job(directory: Path, model_dir: Path, rows: list = ROWS) -> Path:
    """``job.yaml`` for ``rows`` (written to ``train.jsonl``) on ``model_dir``."""
    train = directory / "train.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in rows))
    job = directory / "job.yaml"
    job.write_text(
        f"model: {{source: hf, path: {model_dir}}}\ndata: {{train_files: [{train}]}}\n"
        "rollout: {max_prompt_len: 64, max_response_len: 64}\n"
    )
    return job


@pytest.fixture(scope="session")
def tool():
    sys.path.insert(0, str(REPO / "tools"))
    try:
        return importlib.import_module("preflight")
    finally:
        sys.path.pop(0)
