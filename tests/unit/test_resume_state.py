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
