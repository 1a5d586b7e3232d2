"""Resuming reads the collector's entry of trainer_state.json; an older checkpoint, saved
before the collector checkpointed itself ('sampler'/'buffer' instead), is a clear error."""

import json
from pathlib import Path

import pytest

from prime_megatron.trainer.resume import STATE_FILE, collector_state


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


class FakeWriter:
    """Stands in for TensorBoard's SummaryWriter, keeping what it was opened with."""

    opened: list[dict] = []

    def __init__(self, log_dir, purge_step=None) -> None:
        FakeWriter.opened.append({"log_dir": log_dir, "purge_step": purge_step})

    def add_scalar(self, *args) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def _logger(tmp_path, monkeypatch):
    import torch.utils.tensorboard

    from prime_megatron.run_layout import RunLayout
    from prime_megatron.trainer.metrics import MetricsLogger

    FakeWriter.opened = []
    monkeypatch.setattr(torch.utils.tensorboard, "SummaryWriter", FakeWriter)
    return MetricsLogger(RunLayout(tmp_path), 10, tensorboard=True, wandb_project="", config={})


def test_a_resumed_run_logs_each_step_once(tmp_path, monkeypatch):
    # Steps 3 and 4 ran after the step-2 checkpoint, then the run was killed mid-line.
    before = [{"event": "eval_before", "pass@1": 0.1}, *({"step": s} for s in (1, 2, 3, 4))]
    text = "".join(json.dumps(r) + "\n" for r in before) + '{"step": 5, "rollout/acc'
    (tmp_path / "metrics.jsonl").write_text(text)
    logger = _logger(tmp_path, monkeypatch)
    logger.begin(2)
    logger.log(3, {"rollout/accuracy": 0.5})
    logger.close()
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r.get("step") for r in records] == [None, 1, 2, 3]
    assert FakeWriter.opened == [{"log_dir": str(tmp_path / "tensorboard"), "purge_step": 3}]


def test_a_fresh_run_keeps_tensorboard_whole(tmp_path, monkeypatch):
    logger = _logger(tmp_path, monkeypatch)
    logger.begin(0)
    logger.close()
    assert FakeWriter.opened[0]["purge_step"] is None


def test_a_save_stopped_half_way_is_named_when_the_run_restarts(tmp_path, caplog):
    from prime_megatron.run_layout import RunLayout
    from prime_megatron.trainer.inputs import _resume_checkpoint

    layout = RunLayout(tmp_path)
    (layout.checkpoints / "step_000040.partial" / "policy").mkdir(parents=True)
    assert _resume_checkpoint("auto", layout) is None
    assert [r.getMessage() for r in caplog.records] == [
        f"{layout.checkpoints / 'step_000040.partial'} is a save the run was stopped in the "
        "middle of: ignored, starting from step 0"
    ]
