"""Resuming reads the collector's entry of trainer_state.json; an older checkpoint, saved
before the collector checkpointed itself ('sampler'/'buffer' instead), is a clear error."""

from pathlib import Path

import pytest

from prime_megatron.trainer.checkpointing import STATE_FILE, collector_state


def test_the_collector_entry_is_returned_as_saved():
    entry = {"sampler": {"epoch": 1, "position": 3}, "buffer": {"entries": []}}
    state = {"step": 4, "collector": entry, "layout": {}, "weight_version": 4}
    assert collector_state(state, Path("ckpt/step_000004")) is entry


def test_a_checkpoint_without_a_collector_entry_names_the_file_and_the_fix():
    older = {"step": 4, "sampler": {}, "buffer": {}, "layout": {}, "weight_version": 4}
    with pytest.raises(ValueError) as err:
        collector_state(older, Path("ckpt/step_000004"))
    message = str(err.value)
    assert f"ckpt/step_000004/{STATE_FILE} has no 'collector' entry" in message
    assert "resume it with the prime_megatron that wrote it" in message


def test_a_checkpoint_that_does_not_fit_the_model_is_one_line_naming_the_mismatch(
    tmp_path, monkeypatch
):
    # torch's CheckpointException derives from BaseException: `except Exception` let it
    # through as a multi-screen traceback per rank.
    import traceback
    from types import SimpleNamespace

    from megatron.core import dist_checkpointing
    from torch.distributed.checkpoint.api import CheckpointException

    from prime_megatron.checkpoint.hf_io import CheckpointError
    from prime_megatron.checkpoint.megatron_io import load_model_shards

    cause = RuntimeError("Size mismatch between saved torch.Size([61, 64]) and current\n"
                         "torch.Size([61, 128]) for embedding.word_embeddings.weight")  # fmt: skip
    failure = CheckpointException(
        "CheckpointException ranks:...", {0: (cause, traceback.StackSummary())}
    )

    def fails(*_args, **_kwargs):
        raise failure

    monkeypatch.setattr(dist_checkpointing, "load", fails)
    (tmp_path / "metadata.json").write_text("{}")
    model = SimpleNamespace(sharded_state_dict=dict)
    with pytest.raises(CheckpointError) as error:
        load_model_shards(model, tmp_path)
    assert str(error.value) == (
        f"{tmp_path}: cannot load (RuntimeError: Size mismatch between saved torch.Size([61, 64])"
        " and current torch.Size([61, 128]) for embedding.word_embeddings.weight)"
    )
