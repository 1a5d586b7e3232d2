import dataclasses
import typing
from dataclasses import asdict
from pathlib import Path

import pytest

from prime_megatron.algo.config import AlgoConfig
from prime_megatron.config import ConfigError
from prime_megatron.config.loader import load_config
from prime_megatron.trainer.config import (
    DEFAULT_JOB,
    BatchConfig,
    TrainConfig,
    load_train_config,
)

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _validated(*overrides, world=1):
    return load_train_config(None, list(overrides)).validate(world)


def _with_stand_in_files(cfg: TrainConfig, tmp_path) -> list[str]:
    """Overrides pointing a config's model and data paths at empty stand-ins."""
    if cfg.model.source == "synthetic":
        return []
    (tmp_path / "model").mkdir(exist_ok=True)
    stand_ins = [f"model.path={tmp_path / 'model'}"]
    for name in ("train_files", "val_files"):
        files = [tmp_path / Path(f).name for f in getattr(cfg.data, name)]
        for f in files:
            f.touch()
        stand_ins.append(f"data.{name}=[{','.join(map(str, files))}]")
    return stand_ins


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_validates_at_its_own_layout(path, tmp_path):
    cfg = load_train_config(path)
    world = {"qwen25_math_7b_prime.yaml": 8, "multinode_example.yaml": 16}.get(path.name, 1)
    load_train_config(path, _with_stand_in_files(cfg, tmp_path)).validate(world)


def test_the_default_job_is_tiny_cpu_yaml():
    assert DEFAULT_JOB == CONFIGS / "tiny_cpu.yaml"
    assert load_train_config() == load_config(TrainConfig, DEFAULT_JOB)
    assert load_train_config().model.source == "synthetic"


def test_component_defaults_are_the_components_own():
    """No section default is a job's choice: a YAML that leaves a field out gets the
    component's default, which is the paper's or the official code's."""
    cfg = TrainConfig()
    assert cfg.algo == AlgoConfig() and cfg.batch == BatchConfig()
    assert cfg.model.source == "hf" and cfg.rollout.max_response_len == 3072


# The paper's recipe (Cui et al. 2025, section 4 and Appendix; docs/design.md section 2 and
# "Defaults and their sources"), as configs/qwen25_math_7b_prime.yaml must resolve it.
PAPER_RECIPE = {
    "use_prm": True,
    "algo": {
        "beta": 0.05, "reward_granularity": "token", "process_reward_norm": "batch_norm",
        "prm_loss": "ce", "prm_update": "after", "prm_epochs": 1, "prm_reference": "sft",
        "prm_l1_coef": 0.0, "prm_replay_steps": 0, "prm_warmup_steps": 0,
        "process_baseline": "official", "outcome_coef": 1.0, "process_coef": 1.0,
        "gamma": 1.0, "process_gamma": None, "process_reward_source": "prm",
        "process_reward_basis": "prm_reference", "whiten": True, "clip_eps": 0.2,
        "entropy_coef": 0.0, "kl_coef": 0.0, "loss_agg": "token-mean",
        "filter_accuracy": True, "accuracy_low": 0.2, "accuracy_high": 0.8,
        "drop_truncated": False, "oversample_factor": 4.0, "carryover_max_age": 1,
        # Not the paper's math: where PPO's old log-probs come from (the engine's, while
        # they agree with the trainer's within the tolerance; the official code recomputes).
        "sampling_logp": "rollout", "sampling_logp_tolerance": 0.05,
    },
    "batch": {
        "prompts_per_step": 256, "samples_per_prompt": 4, "mini_batches_per_step": 4,
        "prm_mini_batches_per_step": 4, "micro_batch_size": 8,
    },
    "policy_optim": {"lr": 5e-7, "weight_decay": 0.0, "grad_clip": 1.0, "warmup_steps": 0},
    "prm_optim": {"lr": 1e-6, "weight_decay": 0.0, "grad_clip": 10.0, "warmup_steps": 0},
    "rollout": {"max_prompt_len": 1024, "max_response_len": 3072, "temperature": 1.0,
                "top_p": 1.0},
    "model": {"source": "megatron", "dtype": "bfloat16"},
    "data": {"prompt_format": "chat"},
}  # fmt: skip


def test_the_paper_recipe_config_resolves_to_the_papers_settings():
    resolved = asdict(load_train_config(CONFIGS / "qwen25_math_7b_prime.yaml"))
    for section, values in PAPER_RECIPE.items():
        if not isinstance(values, dict):
            assert resolved[section] == values, section
            continue
        for name, value in values.items():
            assert resolved[section][name] == value, f"{section}.{name}"
    assert set(PAPER_RECIPE["algo"]) == set(resolved["algo"]), "pin every algo field"


def test_print_config_prints_the_resolved_config_and_exits(capsys):
    import yaml

    from prime_megatron.train import main

    assert main(["--print-config", "algo.beta=0.1"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed == asdict(load_train_config(None, ["algo.beta=0.1"]))
    paper = ["--config", str(CONFIGS / "qwen25_math_7b_prime.yaml"), "--print-config"]
    assert main(paper) == 2  # printed, but its checkpoint and data are not on this machine
    out, err = capsys.readouterr()
    assert yaml.safe_load(out)["batch"]["prompts_per_step"] == 256
    assert "config error: model.path='ckpt/eurus-sft'" in err


def test_a_config_inherits_its_base_and_overrides_fields(tmp_path):
    child = tmp_path / "child.yaml"
    child.write_text(f"base: {CONFIGS / 'tiny_cpu.yaml'}\nalgo:\n  prm_epochs: 3\n")
    cfg = load_train_config(child)
    assert cfg.algo.prm_epochs == 3 and cfg.algo.prm_l1_coef == 0.01  # the rest: tiny_cpu
    assert cfg.model == load_train_config().model


# A 2-layer PRM of the default job's width, with the rewards' basis a separate PRM needs.
SMALL_PRM = ["prm_model.source=synthetic", "prm_model.num_layers=2",
             "algo.process_reward_basis=prm_reference"]  # fmt: skip


@pytest.mark.parametrize(
    "overrides, world, message",
    [
        (["parallel.tensor_parallel=3"], 4, "must divide the world size"),
        (["parallel.tensor_parallel=4", "parallel.pipeline_parallel=1"], 4, "model.num_heads=2"),
        (["parallel.pipeline_parallel=3"], 3, "model.num_layers=4"),
        (["batch.samples_per_prompt=1"], 1, "leave-one-out"),
        (["batch.pack_sequences=true"], 1, "batch.pack_sequences=True is invalid: true only"),
        (["batch.max_tokens_per_micro_batch=-1"], 1, "max_tokens_per_micro_batch=-1"),
        (
            ["batch.max_tokens_per_micro_batch=512", "parallel.pipeline_parallel=2"],
            2,
            "batch.max_tokens_per_micro_batch=512 is invalid: 0 with parallel.pipeline_parallel=2",
        ),
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
        # 16 % -2 == 0: the divisibility alone let negative counts through.
        (["batch.mini_batches_per_step=-2"], 1, "batch.mini_batches_per_step=-2 is invalid: >= 1"),
        (["batch.prm_mini_batches_per_step=-4"], 1, "prm_mini_batches_per_step=-4 is invalid"),
        (["batch.mini_batches_per_step=0"], 1, "batch.mini_batches_per_step=0 is invalid: >= 1"),
        (["model.num_heads=0"], 1, "model.num_heads=0 is invalid: >= 1"),
        (["model.num_heads=3"], 1, "model.num_heads=3 is invalid: must divide model.hidden_size"),
        (["run.log_every=0"], 1, "run.log_every=0 is invalid: >= 1"),
        (["policy_optim.weight_decay=-1"], 1, "policy_optim.weight_decay=-1.0 is invalid: >= 0"),
        (["run.output_dir=runs/" + "x" * 300], 1, "at most 255 bytes; one has 300"),
        ([f"run.output_dir={__file__}/run"], 1, "a directory path, but .*py is a file"),
        (["sft.checkpoint=" + "y" * 256], 1, "sft.checkpoint=.* at most 255 bytes"),
        (["rewards.verifier_by_ability=[math,code]"], 1, "verifier_by_ability=.* a mapping"),
        # A PRM of its own start (prm_model): never measured against the policy, another model.
        (["prm_model.source=tiny"], 1, "prm_model.source='tiny' is invalid: one of"),
        (
            ["prm_model.source=synthetic"],
            1,
            "process_reward_basis='policy' is invalid: prm_reference with prm_model.source=synth",
        ),
        (
            [*SMALL_PRM, "algo.prm_reference=policy"],
            1,
            "algo.prm_reference='policy' is invalid: sft with prm_model.source=synthetic",
        ),
        (
            [*SMALL_PRM, "use_prm=false"],
            1,
            "prm_model.source='synthetic' is invalid: '' with use_prm=false",
        ),
        (
            ["prm_model.num_layers=2"],
            1,
            "prm_model.num_layers=2 is invalid: 0 unless prm_model.source=synthetic",
        ),
        (["prm_model.source=hf", "prm_model.path=/no/such/dir"], 1, "prm_model.path='/no/such"),
        (["prm_model.path=/"], 1, "prm_model.path='/' is invalid: empty unless"),
        (
            [*SMALL_PRM, "prm_model.num_heads=3"],
            1,
            "prm_model.num_heads=3 is invalid: must divide prm_model.hidden_size=128",
        ),
        (
            [*SMALL_PRM, "prm_model.num_layers=3", "parallel.pipeline_parallel=2"],
            2,
            "prm_model.num_layers=3 is invalid: must be divisible by parallel.pipeline_parallel=2",
        ),
        (
            [*SMALL_PRM, "prm_model.num_heads=1", "parallel.tensor_parallel=2"],
            2,
            "prm_model.num_heads=1 is invalid: must be divisible by parallel.tensor_parallel=2",
        ),
        (["rewards.verifier_by_data_source=abc"], 1, "verifier_by_data_source='abc' is inv"),
    ],
)
def test_invalid_configs_are_rejected_with_the_field_named(overrides, world, message):
    with pytest.raises(ConfigError, match=message):
        _validated(*overrides, world=world)


# Integer fields where a negative value means something (seeds) or which are bounded elsewhere.
ANY_INT = {"run.seed", "data.seed", "rewards.sandbox.uid_base"}
# Integer fields where 0 is allowed: "off", "none" or "no limit".
ZERO_OK = {
    "run.save_every", "run.eval_prompts", "run.eval_samples", "run.verify_sync_every",
    "run.dump_samples_every", "run.step_credit_every", "run.stop_after_steps",
    "batch.max_tokens_per_micro_batch", "algo.prm_replay_steps", "algo.prm_warmup_steps",
    "algo.carryover_max_age", "policy_optim.warmup_steps", "prm_optim.warmup_steps",
    "synthetic.heldout_prompts", "prm_model.hidden_size", "prm_model.num_layers",
    "prm_model.num_heads", "prm_model.ffn_hidden_size",
}  # fmt: skip


def _int_fields(cls, prefix: str = "") -> list[str]:
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            out += _int_fields(hints[f.name], f"{prefix}{f.name}.")
        elif hints[f.name] is int:
            out.append(prefix + f.name)
    return out


# The default job validates every section but data (files of a given model only).
COUNTS = [name for name in _int_fields(TrainConfig) if name not in ANY_INT | {"data.seed"}]


@pytest.mark.parametrize("name", COUNTS)
def test_every_count_is_checked_for_its_sign_at_validation(name):
    leaf = name.rsplit(".", 1)[-1]
    with pytest.raises(ConfigError, match=rf"{leaf}=-2 is invalid"):
        _validated(f"{name}=-2")
    if name not in ZERO_OK:
        with pytest.raises(ConfigError, match=rf"{leaf}=0 is invalid"):
            _validated(f"{name}=0")


@pytest.mark.parametrize(
    "template, problem",
    [
        ("{prompt} {answer}", "unknown placeholder {answer}"),
        ("{prompt} {0}", "unknown placeholder {0}"),
        ("{prompt} }", "not a format string"),
    ],
)
def test_a_plain_template_is_rendered_once_at_validation(tmp_path, template, problem):
    rows = tmp_path / "train.jsonl"
    rows.write_text("{}\n")
    given = ["model.source=hf", "model.path=/", f"data.train_files=[{rows}]"]
    with pytest.raises(ConfigError) as error:
        _validated(*given, "data.prompt_format=plain", f"data.plain_template='{template}'")
    assert str(error.value).startswith(f"data.plain_template={template!r} is invalid: {problem}")


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


def test_the_config_reference_is_up_to_date_and_documents_every_field():
    import sys

    sys.path.insert(0, str(CONFIGS.parent / "tools"))
    try:
        import config_reference
    finally:
        sys.path.pop(0)
    assert config_reference.main(["--check"]) == 0, "run python tools/config_reference.py"
    undocumented = [r for r in config_reference.TARGET.read_text().splitlines()
                    if r.startswith("| `") and r.endswith("|  |")]  # fmt: skip
    assert not undocumented


def test_a_prm_of_its_own_start_gets_its_own_reference_and_the_policys_only_for_kl(tmp_path):
    default = _validated()
    assert not default.separate_prm and default.loads_reference  # one reference for both
    small = _validated(*SMALL_PRM)
    assert small.separate_prm and not small.loads_reference
    assert small.prm_model.synthetic_model(small.model).num_layers == 2
    assert small.prm_model.synthetic_model(small.model).hidden_size == 128  # the policy's
    assert small.prm_model.sft_checkpoint_of(small.sft) == "runs/sft-tiny-prm"
    assert _validated(*SMALL_PRM, "algo.kl_coef=0.1").loads_reference
    # Replaying past batches is fine: each carries its PRM reference's log-probs.
    assert _validated(*SMALL_PRM, "algo.prm_replay_steps=2").algo.prm_replay_steps == 2
    # A synthetic PRM trains on the synthetic task: not beside a model of the user's.
    rows = tmp_path / "train.jsonl"
    rows.write_text("{}\n")
    given = ["model.source=hf", "model.path=/", f"data.train_files=[{rows}]"]
    with pytest.raises(ConfigError, match="prm_model.source='synthetic' is invalid: synthetic "
                       "only with model.source=synthetic"):  # fmt: skip
        _validated(*given, *SMALL_PRM[:1], "algo.process_reward_basis=prm_reference")
    own = ["prm_model.source=hf", "prm_model.path=/", "algo.process_reward_basis=prm_reference"]
    assert _validated(*given, *own).separate_prm
