"""From a validated config to a run's inputs: nothing written back into the config, every
file the config names checked before anything heavy, and bad input as one line, exit 2,
no run dir left behind (the CLI is driven in-process: it returns before any process group,
model or vLLM engine exists)."""

import json
from dataclasses import FrozenInstanceError, asdict
from pathlib import Path

import pytest
import yaml

from prime_megatron.config.loader import load_config
from prime_megatron.data.tokenizer import build_char_tokenizer
from prime_megatron.models.hf_factory import hf_config, save_random_hf_model
from prime_megatron.run_layout import RunLayout
from prime_megatron.train import load_and_validate, main
from prime_megatron.trainer.config import TrainConfig
from prime_megatron.trainer.inputs import InputError, prepare_inputs, write_run_record

SMALL_TASK = ["synthetic.train_prompts=40", "synthetic.heldout_prompts=8"]
ROW = {"prompt": [{"role": "user", "content": "47+38-19"}], "data_source": "synthetic_arith",
       "ability": "math", "reward_model": {"ground_truth": "66"}}  # fmt: skip


def _write_rows(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory) -> Path:
    """A tiny random HF model with the character tokenizer (vocab 61 >= 27 tokens)."""
    out = tmp_path_factory.mktemp("hf") / "model"
    return save_random_hf_model(out, hf_config(), tokenizer=build_char_tokenizer())


def test_prepare_inputs_leaves_the_config_as_validated_and_config_yaml_is_it(tmp_path):
    cfg = load_and_validate([f"run.output_dir={tmp_path / 'run'}", *SMALL_TASK])
    before = asdict(cfg)
    layout = RunLayout(cfg.run.output_dir)
    inputs = prepare_inputs(cfg, layout)
    assert asdict(cfg) == before  # the derived data files are not written into cfg.data
    assert not layout.root.exists()  # preparing writes nothing
    assert inputs.train_files == (str(layout.train_data),) and len(inputs.train) == 40
    assert inputs.start.sft is not None and inputs.start.format == "megatron"

    write_run_record(layout, cfg, inputs)
    assert load_config(TrainConfig, layout.config) == cfg
    assert yaml.safe_load(layout.config.read_text()) == before
    assert yaml.safe_load(layout.config.read_text())["data"]["train_files"] == []
    assert len(layout.train_data.read_text().splitlines()) == 40
    record = json.loads(layout.resolved_inputs.read_text())
    assert record["train_files"] == [str(layout.train_data)] and record["heldout_rows"] == 8
    assert record["start"] == {"format": "megatron", "path": "runs/sft-tiny", "sft_warmup": True}


def test_the_validated_config_cannot_be_changed():
    cfg = load_and_validate([])
    with pytest.raises(FrozenInstanceError):
        cfg.rollout.load_format = "auto"
    with pytest.raises(FrozenInstanceError):
        cfg.data.prompt_format = "plain"


def test_an_hf_model_dir_is_a_start_with_its_own_tokenizer(tmp_path, hf_dir):
    train = _write_rows(tmp_path / "train.jsonl", [ROW])
    argv = ["model.source=hf", f"model.path={hf_dir}", f"data.train_files=[{train}]"]
    cfg = load_and_validate([f"run.output_dir={tmp_path / 'run'}", *argv])
    inputs = prepare_inputs(cfg, RunLayout(cfg.run.output_dir))
    start = inputs.start
    assert (start.format, start.path, start.side_files) == ("hf", hf_dir, hf_dir)
    assert inputs.start.sft is None and inputs.heldout is None and not inputs.generated
    text = "47+38-19\n85"
    ids = inputs.tokenizer.encode(text, add_special_tokens=False)
    assert inputs.tokenizer.decode(ids) == text and len(ids) == len(text)
    assert inputs.encode(ROW["prompt"]) == [inputs.tokenizer.bos_token_id, *ids[:9]]
    record = inputs.record()
    assert record["start"] == {"format": "hf", "path": str(hf_dir), "sft_warmup": False}
    assert (record["val_files"], record["heldout_rows"], record["skipped_rows"]) == ([], 0, {})


def _fails_in_one_line(capsys, tmp_path, *argv) -> str:
    run = tmp_path / "run"
    assert main([f"run.output_dir={run}", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert not run.exists()
    return err.strip()


@pytest.mark.parametrize("source", ["megatron", "hf"])
@pytest.mark.parametrize("which", ["train_files", "val_files"])
def test_a_bad_row_fails_before_anything_heavy(capsys, tmp_path, source, which):
    bad_row = {**ROW, "prompt": [{"role": "robot", "content": "47+38-19"}]}
    bad = _write_rows(tmp_path / "bad.jsonl", [ROW, bad_row])
    good = _write_rows(tmp_path / "good.jsonl", [ROW])
    files = {"train_files": good, "val_files": good, which: bad}
    (tmp_path / "model").mkdir()  # the data is read first: the model dir is never looked at
    err = _fails_in_one_line(
        capsys, tmp_path, f"model.source={source}", f"model.path={tmp_path / 'model'}",
        f"data.train_files=[{files['train_files']}]", f"data.val_files=[{files['val_files']}]",
    )  # fmt: skip
    assert err == (
        f"prime-train: error: {bad}: row 2: field 'prompt[0].role': expected one of "
        "('system', 'user', 'assistant'), got 'robot'"
    )


def _copy_without(src: Path, dst: Path, *names: str) -> Path:
    dst.mkdir()
    for f in src.iterdir():
        if f.name not in names:
            (dst / f.name).write_bytes(f.read_bytes())
    return dst


def test_unusable_model_dirs_fail_before_anything_heavy(capsys, tmp_path, hf_dir, monkeypatch):
    train = _write_rows(tmp_path / "train.jsonl", [ROW])
    tokenizer_files = [f.name for f in hf_dir.iterdir() if "token" in f.name or "chat" in f.name]
    cases = [
        ("megatron", hf_dir, "not a prime_megatron checkpoint (no prime_megatron.json)"),
        ("hf", _copy_without(hf_dir, tmp_path / "a", "config.json"), "no config.json"),
        ("hf", _copy_without(hf_dir, tmp_path / "b", "model.safetensors"), "no model.safetensors"),
        ("hf", _copy_without(hf_dir, tmp_path / "c", *tokenizer_files), "no tokenizer files"),
    ]
    for source, path, message in cases:
        err = _fails_in_one_line(capsys, tmp_path, f"model.source={source}",
                                 f"model.path={path}", f"data.train_files=[{train}]")  # fmt: skip
        assert err.startswith(f"prime-train: error: {path}") and message in err, err
    monkeypatch.setenv("WORLD_SIZE", "3")  # hf_config(): 4 heads, 2 query groups
    argv = ["model.source=hf", f"model.path={hf_dir}", f"data.train_files=[{train}]"]
    err = _fails_in_one_line(capsys, tmp_path, *argv, "parallel.tensor_parallel=3")
    assert "tensor_parallel=3 does not divide num_attention_heads=4" in err


def test_a_resume_dir_that_is_no_checkpoint_fails_before_anything_heavy(capsys, tmp_path):
    (tmp_path / "ckpt").mkdir()
    err = _fails_in_one_line(capsys, tmp_path, *SMALL_TASK, f"run.resume={tmp_path / 'ckpt'}")
    assert "trainer_state.json, not a complete checkpoint" in err


def _hf_job(tmp_path: Path, hf_dir: Path, rows: list, *argv: str) -> list[str]:
    train = _write_rows(tmp_path / "train.jsonl", rows)
    return [f"run.output_dir={tmp_path / 'run'}", "model.source=hf", f"model.path={hf_dir}",
            f"data.train_files=[{train}]", *argv]  # fmt: skip


def test_prompts_that_never_fit_max_prompt_len_stop_the_job_before_anything_heavy(tmp_path, hf_dir):
    # A system prompt alone longer than the limit, as a Llama-3-style template adds to every
    # row: the collector would skip every prompt and draw again, forever.
    system = {"role": "system", "content": "1+1=2\n" * 12}  # 72 characters, 72 tokens
    row = {**ROW, "prompt": [system, *ROW["prompt"]]}
    cfg = load_and_validate(_hf_job(tmp_path, hf_dir, [row, row], "rollout.max_prompt_len=64"))
    with pytest.raises(InputError) as error:  # INPUT_ERRORS: one line, exit code 2
        prepare_inputs(cfg, RunLayout(cfg.run.output_dir))
    assert str(error.value) == (
        "rollout.max_prompt_len=64: every prompt of the first 2 rows of "
        f"['{tmp_path / 'train.jsonl'}'] is longer (the shortest is 83 tokens as rendered, "
        "chat template included), so training would never get a prompt; raise "
        "rollout.max_prompt_len or shorten the prompts"
    )


def test_some_over_long_prompts_are_one_warning_and_the_job_starts(caplog, tmp_path, hf_dir):
    long_row = {**ROW, "prompt": [{"role": "user", "content": "47+38-19" * 3}]}
    argv = _hf_job(tmp_path, hf_dir, [long_row, ROW, long_row], "rollout.max_prompt_len=12")
    cfg = load_and_validate(argv)
    inputs = prepare_inputs(cfg, RunLayout(cfg.run.output_dir))  # 10 tokens fit, 26 do not
    assert len(inputs.train) == 3
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [
        f"2 of the first 3 rows of ['{tmp_path / 'train.jsonl'}'] are longer than "
        "rollout.max_prompt_len=12 tokens and will be skipped"
    ]


def test_prompt_lengths_are_measured_on_the_first_rows_only(tmp_path, hf_dir, monkeypatch):
    monkeypatch.setattr("prime_megatron.trainer.inputs.PROMPT_LENGTH_SAMPLE", 2)
    long_row = {**ROW, "prompt": [{"role": "user", "content": "47+38-19" * 3}]}
    argv = _hf_job(tmp_path, hf_dir, [long_row, long_row, ROW], "rollout.max_prompt_len=12")
    cfg = load_and_validate(argv)
    with pytest.raises(InputError, match="every prompt of the first 2 rows"):
        prepare_inputs(cfg, RunLayout(cfg.run.output_dir))


def test_held_out_prompts_that_never_fit_stop_the_job_too(tmp_path, hf_dir):
    long_row = {**ROW, "prompt": [{"role": "user", "content": "47+38-19" * 3}]}
    val = _write_rows(tmp_path / "val.jsonl", [long_row, long_row])
    argv = _hf_job(tmp_path, hf_dir, [ROW], "rollout.max_prompt_len=12", f"data.val_files=[{val}]")
    cfg = load_and_validate(argv)
    with pytest.raises(InputError, match=r"val.jsonl'\] is longer .* the held-out evaluation"):
        prepare_inputs(cfg, RunLayout(cfg.run.output_dir))


def test_a_tokenizer_whose_ids_pass_the_models_vocab_is_refused(tmp_path, bpe_tokenizer):
    # 150,003 tokens, fewer than 151,000 rows, but <|im_end|> is id 151645: a count-based
    # check would let the first chat prompt index past the embedding.
    qwen = bpe_tokenizer("qwen2.5")
    model = save_random_hf_model(tmp_path / "m", hf_config(vocab_size=151000, hidden_size=32,
                                 num_hidden_layers=1, head_dim=8), tokenizer=qwen)  # fmt: skip
    argv = _hf_job(tmp_path, model, [ROW])
    cfg = load_and_validate(argv)
    with pytest.raises(InputError, match="the tokenizer's ids reach 151645, past the model's"):
        prepare_inputs(cfg, RunLayout(cfg.run.output_dir))


def test_packing_is_refused_where_transformer_engine_builds_the_attention(
    tmp_path, hf_dir, monkeypatch
):
    monkeypatch.setattr("prime_megatron.trainer.inputs.layer_spec_kind", lambda: "te")
    argv = _hf_job(tmp_path, hf_dir, [ROW], "batch.max_tokens_per_micro_batch=512",
                   "batch.pack_sequences=true")  # fmt: skip
    cfg = load_and_validate(argv)
    with pytest.raises(InputError, match="pack_sequences=true: not supported with Transformer"):
        prepare_inputs(cfg, RunLayout(cfg.run.output_dir))
    monkeypatch.setattr("prime_megatron.trainer.inputs.layer_spec_kind", lambda: "local")
    prepare_inputs(cfg, RunLayout(cfg.run.output_dir))


def test_prompt_and_answer_past_the_models_positions_fail_before_vllm_starts(tmp_path, hf_dir):
    # vLLM refuses such a max_model_len too, but with a pydantic traceback after its start-up.
    argv = _hf_job(tmp_path, hf_dir, [ROW], "rollout.max_prompt_len=1000000000")
    cfg = load_and_validate(argv)
    with pytest.raises(InputError) as error:
        prepare_inputs(cfg, RunLayout(cfg.run.output_dir))
    assert str(error.value) == (
        "rollout.max_prompt_len=1000000000 + rollout.max_response_len=80 = 1000000080 tokens "
        f"is more than the model's 256 positions (max_position_embeddings of {hf_dir}); "
        "lower them"
    )


def _checkpoint_of(run: Path, config: dict) -> Path:
    """A stand-in checkpoint whose run recorded ``config`` as its model."""
    (run / "rollout_model").mkdir(parents=True)
    (run / "rollout_model" / "config.json").write_text(json.dumps(config))
    step = run / "checkpoints" / "step_000001"
    step.mkdir(parents=True)
    (step / "trainer_state.json").write_text("{}")
    return step


def test_resuming_a_checkpoint_of_another_model_shape_fails_before_anything_loads(tmp_path, hf_dir):
    other = hf_config(hidden_size=64, head_dim=16, num_hidden_layers=2).to_dict()
    checkpoint = _checkpoint_of(tmp_path / "old", other)
    cfg = load_and_validate(_hf_job(tmp_path, hf_dir, [ROW], f"run.resume={checkpoint}"))
    with pytest.raises(InputError) as error:
        prepare_inputs(cfg, RunLayout(cfg.run.output_dir))
    assert str(error.value) == (
        f"run.resume: {checkpoint} is a checkpoint of another model shape (checkpoint vs this "
        "run: hidden_size 64 vs 128, num_layers 2 vs 4, head_dim 16 vs 32); resume one of this "
        "model, or start afresh with run.resume=never or another run.output_dir"
    )
    same = _checkpoint_of(tmp_path / "same", json.loads((hf_dir / "config.json").read_text()))
    cfg = load_and_validate(_hf_job(tmp_path, hf_dir, [ROW], f"run.resume={same}"))
    assert prepare_inputs(cfg, RunLayout(cfg.run.output_dir)).resume == same


# A PRM of its own start (prm_model): 2 layers of the policy's width.
SMALL_PRM = ["prm_model.source=synthetic", "prm_model.num_layers=2",
             "algo.process_reward_basis=prm_reference"]  # fmt: skip


def test_a_synthetic_prm_of_its_own_shape_is_sft_trained_by_the_policys_recipe(tmp_path):
    cfg = load_and_validate([f"run.output_dir={tmp_path / 'run'}", *SMALL_TASK, *SMALL_PRM])
    inputs = prepare_inputs(cfg, RunLayout(cfg.run.output_dir))
    policy, prm = inputs.start, inputs.prm_start
    assert prm.path == prm.sft.checkpoint == Path("runs/sft-tiny-prm")
    assert (prm.hf_config["num_hidden_layers"], policy.hf_config["num_hidden_layers"]) == (2, 4)
    assert prm.hf_config["vocab_size"] == policy.hf_config["vocab_size"]
    assert prm.sft.rows == policy.sft.rows  # the same worked solutions
    # The same recipe but for the PRM's depth: a shipped checkpoint is found by it.
    ours, theirs = policy.sft.recipe, prm.sft.recipe
    assert {k for k in ours if ours[k] != theirs[k]} == {"model"}
    model = ours["model"]
    assert {k for k in model if model[k] != theirs["model"][k]} == {"num_layers"}
    assert inputs.record()["prm_start"] == {
        "format": "megatron", "path": "runs/sft-tiny-prm", "sft_warmup": True
    }  # fmt: skip
    where = f"prm_model.sft_checkpoint={tmp_path / 'prm-sft'}"
    cfg = load_and_validate([*SMALL_TASK, *SMALL_PRM, where])
    assert prepare_inputs(cfg, RunLayout(cfg.run.output_dir)).prm_start.path == tmp_path / "prm-sft"
    cfg = load_and_validate(SMALL_TASK)
    assert prepare_inputs(cfg, RunLayout(cfg.run.output_dir)).prm_start is None  # the policy's


def test_an_hf_prm_must_share_the_policys_vocabulary_and_tokenizer(tmp_path, hf_dir):
    own = ["prm_model.source=hf", "algo.process_reward_basis=prm_reference"]
    small = hf_config(num_hidden_layers=1)
    same = save_random_hf_model(tmp_path / "same", small, tokenizer=build_char_tokenizer())
    cfg = load_and_validate(_hf_job(tmp_path, hf_dir, [ROW], *own, f"prm_model.path={same}"))
    prm = prepare_inputs(cfg, RunLayout(cfg.run.output_dir)).prm_start
    assert (prm.format, prm.path, prm.hf_config["num_hidden_layers"]) == ("hf", same, 1)

    wider = hf_config(num_hidden_layers=1, vocab_size=small.vocab_size + 8)
    wider = save_random_hf_model(tmp_path / "wider", wider, tokenizer=build_char_tokenizer())
    cfg = load_and_validate(_hf_job(tmp_path, hf_dir, [ROW], *own, f"prm_model.path={wider}"))
    n = small.vocab_size
    refused = rf"prm_model: {wider} has vocab_size={n + 8}, the policy {n}; the PRM must use"
    with pytest.raises(InputError, match=refused):
        prepare_inputs(cfg, RunLayout(cfg.run.output_dir))

    other_tokenizer = build_char_tokenizer()
    other_tokenizer.add_tokens(["<step>"])
    other = save_random_hf_model(tmp_path / "other", small, tokenizer=other_tokenizer)
    cfg = load_and_validate(_hf_job(tmp_path, hf_dir, [ROW], *own, f"prm_model.path={other}"))
    with pytest.raises(InputError, match="holds another tokenizer than the policy's"):
        prepare_inputs(cfg, RunLayout(cfg.run.output_dir))
