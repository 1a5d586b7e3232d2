import pytest

from prime_megatron.config import ConfigError
from prime_megatron.config.loader import load_config
from prime_megatron.trainer.config import TrainConfig


def _validated(*overrides, world=1):
    return load_config(TrainConfig, None, list(overrides)).validate(world)


def test_defaults_are_valid_and_shipped_configs_load():
    _validated()
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "configs"
    for path in sorted(root.glob("*.yaml")):
        cfg = load_config(TrainConfig, path)
        assert cfg.batch.samples_per_prompt >= 2, path
        if cfg.model.source == "synthetic":  # the CPU jobs: valid as they ship, on one rank
            cfg.validate(1)


def test_tiny_cpu_yaml_spells_out_the_default_job():
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "configs" / "tiny_cpu.yaml"
    assert load_config(TrainConfig, path) == TrainConfig()


@pytest.mark.parametrize(
    "overrides, world, message",
    [
        (["parallel.tensor_parallel=3"], 4, "must divide the world size"),
        (["parallel.tensor_parallel=4", "parallel.pipeline_parallel=1"], 4, "model.num_heads=2"),
        (["parallel.pipeline_parallel=3"], 3, "model.num_layers=4"),
        (["batch.samples_per_prompt=1"], 1, "leave-one-out"),
        (["batch.prompts_per_step=10", "batch.mini_batches_per_step=3"], 1, "must divide"),
        (["rollout.tensor_parallel_size=2"], 1, "rollout.tensor_parallel_size"),
        (["algo.beta=0"], 1, "algo.beta=0"),
        (["algo.prm_warmup_steps=-1"], 1, "algo.prm_warmup_steps=-1"),
        (["algo.prm_warmup_steps=5", "use_prm=false"], 1, "0 with use_prm=false"),
        (["algo.prm_warmup_steps=5", "run.steps=5"], 1, "must be < run.steps=5"),
        (["algo.accuracy_low=0.9", "algo.accuracy_high=0.5"], 1, "algo.accuracy_high"),
        (["algo.process_reward_basis=sft"], 1, "algo.process_reward_basis='sft' is invalid"),
        (
            ["algo.prm_reference=policy", "algo.process_reward_basis=policy"],
            1,
            "algo.process_reward_basis='policy' is invalid: 'prm_reference' when",
        ),
        (["model.source=megatron", "model.path=/no/such/dir"], 1, "model.path"),
        (["run.resume=/no/such/ckpt"], 1, "run.resume"),
        (["policy_optim.lr=-1"], 1, "policy_optim.lr"),
        (["data.train_files=[/no/such.jsonl]"], 1, "data.train_files"),
        # The synthetic model trains on its own task only (its tokenizer knows 23 characters):
        # the user's files are refused rather than silently replaced by the task.
        (["data.train_files=[t.jsonl]"], 1, r"\['t.jsonl'\] is invalid: must be empty with model"),
        (["data.val_files=[v.jsonl]"], 1, "data.val_files.* must be empty with model.source=syn"),
        (["data.prompt_format=plain"], 1, "data.prompt_format='plain' is invalid: chat with"),
        (["sft.enabled=false"], 1, "sft.enabled=False is invalid: true with model.source=syn"),
        # vLLM always starts without weights; the policy's come by sync.
        (["rollout.load_format=auto"], 1, "rollout.load_format='auto' is invalid: dummy"),
        (["model.source=hf", "model.path=/no/such/dir"], 1, "model.path"),
        (["model.source=hf", "model.path=/"], 1, r"data.train_files=\[\] is invalid"),
        # Non-finite floats: one loader rule covers every float field.
        (["algo.beta=.inf"], 1, r"algo.beta=inf is invalid: expected a finite number"),
        (["algo.beta=1e400"], 1, r"algo.beta='1e400' is invalid: expected a finite number"),
        (["policy_optim.lr=.inf"], 1, "policy_optim.lr=inf is invalid: expected a finite"),
        (["algo.outcome_coef=.nan"], 1, "algo.outcome_coef=nan is invalid: expected a finite"),
        (["rewards.math_timeout_s=.inf"], 1, "rewards.math_timeout_s=inf is invalid"),
    ],
)
def test_invalid_configs_are_rejected_with_the_field_named(overrides, world, message):
    with pytest.raises(ConfigError, match=message):
        _validated(*overrides, world=world)


def test_cli_reports_config_errors_without_starting(capsys):
    from prime_megatron.train import main

    assert main(["batch.samples_per_prompt=1"]) == 2
    assert "config error: batch.samples_per_prompt=1" in capsys.readouterr().err


@pytest.mark.parametrize("source", ["override", "file"])
def test_cli_reports_yaml_syntax_errors_in_one_line(capsys, tmp_path, source):
    from prime_megatron.train import main

    if source == "file":
        path = tmp_path / "broken.yaml"
        path.write_text("run:\n  steps: [1,\n")
        argv, named = ["--config", str(path)], str(path)
    else:
        argv, named = ["algo.beta=[0.1,"], "'algo.beta=[0.1,'"
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "config error" in err and named in err, err


def test_oracle_process_rewards_need_the_synthetic_tasks_labels(tmp_path):
    rows = tmp_path / "train.jsonl"
    rows.write_text("{}\n")
    given = ["model.source=hf", "model.path=/", f"data.train_files=[{rows}]"]
    _validated(*given)  # the same config with the PRM's rewards is fine
    with pytest.raises(ConfigError, match="algo.process_reward_source='oracle' is invalid"):
        _validated(*given, "algo.process_reward_source=oracle")
    assert _validated("algo.process_reward_source=oracle", "use_prm=false").use_prm is False
