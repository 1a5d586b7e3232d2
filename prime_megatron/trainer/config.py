"""The training job's config: one dataclass per component, checked before anything heavy.

Every section is frozen: once validated, the config is what runs and what ``config.yaml``
records. What a run derives from it lives in ``trainer/inputs.py``'s ``ResolvedInputs``.

Batch sizes say what they count: ``prompts_per_step`` prompts are trained on per RL step
(after filtering), each with ``samples_per_prompt`` samples; ``mini_batches_per_step``
optimizer steps split those samples; ``micro_batch_size`` samples go through one
forward/backward on one data-parallel rank.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

from prime_megatron.algo.config import AlgoConfig
from prime_megatron.config.errors import ConfigError, check, check_dir_path
from prime_megatron.config.loader import load_config
from prime_megatron.data.config import DataConfig
from prime_megatron.data.synthetic import ArithmeticConfig
from prime_megatron.passes.micro import MicroBatching
from prime_megatron.rewards.config import RewardConfig
from prime_megatron.rollout.config import RolloutConfig

MODEL_SOURCES = ("synthetic", "megatron", "hf")
PRM_SOURCES = ("", *MODEL_SOURCES)  # "": the policy's start
# The synthetic model's shape fields, which a PRM of its own start may set apart.
SHAPE_FIELDS = ("hidden_size", "num_layers", "num_heads", "ffn_hidden_size")
RESUME = ("auto", "never")


@dataclass(frozen=True)
class RunConfig:
    output_dir: str = "runs/default"  # the run dir: checkpoints, metrics, logs, exports
    seed: int = 1  # seeds models, sampling and the data order
    steps: int = 120  # RL steps
    save_every: int = 40  # steps; 0 = only at the end
    keep_last: int = 2  # checkpoints kept
    resume: str = "auto"  # auto | never | path to a checkpoint dir
    eval_prompts: int = 1000  # held-out prompts for accuracy before/after RL (0 = skip)
    # Samples per held-out prompt at the rollout temperature, besides greedy (0 = greedy only):
    # sampled pass@1 is what RL optimizes; greedy is what a user decodes with.
    eval_samples: int = 4
    log_every: int = 1  # steps between console metric lines
    tensorboard: bool = True  # event files under the run dir
    wandb_project: str = ""  # empty = off
    verify_sync_every: int = 0  # steps; 0 = off. greedy vLLM vs Megatron check
    dump_samples_every: int = 0  # steps; 0 = off. samples + token rewards to samples/*.jsonl
    # steps; 0 = off. Synthetic task only: the PRM's first-wrong-step AUROC on the batch
    # against the models' own confidence, position and random baselines (credit/*).
    step_credit_every: int = 0
    export_hf: bool = True  # write the final policy as an HF checkpoint
    export_prm_hf: bool = True  # and the trained implicit PRM (with use_prm), to prm_hf/
    plot: bool = True  # PNG curves of the run's metrics at the end
    stop_after_steps: int = 0  # testing aid: stop (as if killed) after this many steps

    def validate(self) -> None:
        check(self.steps >= 1, "run.steps", self.steps, ">= 1")
        check(self.save_every >= 0, "run.save_every", self.save_every, ">= 0")
        check(self.keep_last >= 1, "run.keep_last", self.keep_last, ">= 1")
        ok = self.resume in RESUME or os.path.isdir(self.resume)
        check(ok, "run.resume", self.resume, f"one of {RESUME} or an existing checkpoint dir")
        check(self.eval_prompts >= 0, "run.eval_prompts", self.eval_prompts, ">= 0")
        check(self.log_every >= 1, "run.log_every", self.log_every, ">= 1")
        for name in ("eval_samples", "verify_sync_every", "dump_samples_every",
                     "step_credit_every", "stop_after_steps"):  # fmt: skip
            value = getattr(self, name)
            check(value >= 0, f"run.{name}", value, ">= 0 (0 = off)")
        check_dir_path("run.output_dir", self.output_dir)


@dataclass(frozen=True)
class ModelConfig:
    # hf: an HF model dir (safetensors), mapped to Megatron in memory when the run starts;
    # megatron: a checkpoint from tools/convert_hf_to_megatron.py; synthetic: a tiny
    # Qwen2-like model built here and SFT-trained on the synthetic task (the CPU job).
    source: str = "hf"
    path: str = ""  # the model dir (model.source megatron or hf)
    dtype: str = "float32"  # training precision of every model (policy, PRM, references)
    # Shape of the synthetic model (docs/tiny-task.md: 0.86 M params, head_dim 64 for vLLM CPU).
    hidden_size: int = 128
    num_layers: int = 4  # synthetic model only
    num_heads: int = 2  # synthetic model only
    ffn_hidden_size: int = 384  # synthetic model only
    max_position_embeddings: int = 256  # synthetic model only
    # GPU memory option: between the phases of a step, idle models' weights, gradients and
    # AdamW moments wait in host memory (prime_megatron/trainer/offload.py). Off by default:
    # it trades device memory for host<->device copies; a no-op on CPU.
    offload_idle: bool = False

    def validate(self) -> None:
        check(self.source in MODEL_SOURCES, "model.source", self.source, f"one of {MODEL_SOURCES}")
        if self.source != "synthetic":
            check(os.path.isdir(self.path), "model.path", self.path, "an existing directory")
        allowed = ("float32", "bfloat16", "float16")
        check(self.dtype in allowed, "model.dtype", self.dtype, f"one of {allowed}")
        for name in ("hidden_size", "num_layers", "num_heads", "ffn_hidden_size",
                     "max_position_embeddings"):  # fmt: skip
            check(getattr(self, name) >= 1, f"model.{name}", getattr(self, name), ">= 1")
        check(self.hidden_size % self.num_heads == 0, "model.num_heads", self.num_heads,
              f"must divide model.hidden_size={self.hidden_size} (the head size)")  # fmt: skip


@dataclass(frozen=True)
class PRMModelConfig:
    """Where the implicit PRM starts (docs/prm.md). With a start of its own, the PRM's
    reference is a frozen copy of that start; the policy's own reference is then loaded
    only for a KL term (algo.kl_coef > 0)."""

    # "": the policy's start (model.*), one frozen reference for both; hf / megatron: a
    # model dir read as model.path is, of the policy's tokenizer and vocabulary; synthetic:
    # a model of the shape below, SFT-trained by the policy's recipe (sft.*).
    source: str = ""
    path: str = ""  # the PRM's model dir (prm_model.source megatron or hf)
    hidden_size: int = 0  # synthetic PRM only; 0 = model.hidden_size
    num_layers: int = 0  # synthetic PRM only; 0 = model.num_layers
    num_heads: int = 0  # synthetic PRM only; 0 = model.num_heads
    ffn_hidden_size: int = 0  # synthetic PRM only; 0 = model.ffn_hidden_size
    # The synthetic PRM's SFT checkpoint ("" = sft.checkpoint + "-prm"); reused, or copied
    # from a shipped one, when made by the same recipe, as the policy's.
    sft_checkpoint: str = ""

    def validate(self) -> None:
        check(self.source in PRM_SOURCES, "prm_model.source", self.source,
              f"one of {PRM_SOURCES} ('' = the policy's start)")  # fmt: skip
        if self.source in ("hf", "megatron"):
            check(os.path.isdir(self.path), "prm_model.path", self.path, "an existing directory")
        else:
            check(not self.path, "prm_model.path", self.path,
                  "empty unless prm_model.source is hf or megatron")  # fmt: skip
        for name in SHAPE_FIELDS:
            value = getattr(self, name)
            check(value >= 0, f"prm_model.{name}", value, ">= 0 (0 = the policy's)")
            check(not value or self.source == "synthetic", f"prm_model.{name}", value,
                  "0 unless prm_model.source=synthetic (a given model has its own "
                  "shape)")  # fmt: skip
        if self.sft_checkpoint:
            check_dir_path("prm_model.sft_checkpoint", self.sft_checkpoint)

    def synthetic_model(self, model: ModelConfig) -> ModelConfig:
        """The synthetic PRM's model section: the policy's, with this section's shape."""
        sizes = {name: getattr(self, name) or getattr(model, name) for name in SHAPE_FIELDS}
        return dataclasses.replace(model, **sizes)

    def sft_checkpoint_of(self, sft: SFTConfig) -> str:
        return self.sft_checkpoint or sft.checkpoint.rstrip("/") + "-prm"


@dataclass(frozen=True)
class ParallelConfig:
    tensor_parallel: int = 1  # TP size of the policy, PRM and reference
    pipeline_parallel: int = 1  # PP size; data parallel = world / (TP x PP)

    def validate(self, world_size: int) -> None:
        tp, pp = self.tensor_parallel, self.pipeline_parallel
        check(tp >= 1, "parallel.tensor_parallel", tp, ">= 1")
        check(pp >= 1, "parallel.pipeline_parallel", pp, ">= 1")
        check(
            world_size % (tp * pp) == 0,
            "parallel.tensor_parallel",
            tp,
            f"tensor_parallel x pipeline_parallel ({tp * pp}) must divide the world size "
            f"({world_size})",
        )


@dataclass(frozen=True)
class BatchConfig:
    """Defaults: the paper's 7B recipe (256 prompts x 4 samples, mini-batches of 256)."""

    prompts_per_step: int = 256  # prompts trained on per RL step, after filtering
    samples_per_prompt: int = 4  # K samples per prompt (paper: 4)
    mini_batches_per_step: int = 4  # the policy's optimizer steps per RL step
    # The PRM's optimizer steps per epoch over the step's batch (official recipe: 4).
    prm_mini_batches_per_step: int = 4
    micro_batch_size: int = 8  # samples per forward/backward per data-parallel rank
    # Tokens (padded) per forward/backward per data-parallel rank; replaces micro_batch_size
    # in the RL passes when > 0: rows sorted by length, as many per micro-batch as fit, so
    # short answers go many at a time and a long one alone (0 = off). Single pipeline stage.
    max_tokens_per_micro_batch: int = 0
    # With max_tokens_per_micro_batch: concatenate each micro-batch's rows into one sequence
    # (positions restart per row, attention kept within a row): no padding computed.
    pack_sequences: bool = False

    def validate(self) -> None:
        check(self.prompts_per_step >= 1, "batch.prompts_per_step", self.prompts_per_step, ">= 1")
        check(
            self.samples_per_prompt >= 2,
            "batch.samples_per_prompt",
            self.samples_per_prompt,
            ">= 2 (the leave-one-out baseline needs another sample of the same prompt)",
        )
        # Checked before the divisibility below: 16 % -2 == 0, and % 0 raises.
        for name in ("mini_batches_per_step", "prm_mini_batches_per_step"):
            check(getattr(self, name) >= 1, f"batch.{name}", getattr(self, name), ">= 1")
        check(
            self.prompts_per_step % self.mini_batches_per_step == 0,
            "batch.mini_batches_per_step",
            self.mini_batches_per_step,
            f"must divide batch.prompts_per_step={self.prompts_per_step}",
        )
        check(
            self.prompts_per_step % self.prm_mini_batches_per_step == 0,
            "batch.prm_mini_batches_per_step",
            self.prm_mini_batches_per_step,
            f"must divide batch.prompts_per_step={self.prompts_per_step}",
        )
        check(self.micro_batch_size >= 1, "batch.micro_batch_size", self.micro_batch_size, ">= 1")
        budget = self.max_tokens_per_micro_batch
        check(budget >= 0, "batch.max_tokens_per_micro_batch", budget, ">= 0 (0 = off)")
        check(not self.pack_sequences or budget > 0, "batch.pack_sequences", True,
              "true only with batch.max_tokens_per_micro_batch > 0 (its length)")  # fmt: skip

    @property
    def micro_batching(self) -> MicroBatching:
        """How the RL passes cut a rank's rows (``passes/micro.py``)."""
        return MicroBatching(self.micro_batch_size, self.max_tokens_per_micro_batch,
                             self.pack_sequences)  # fmt: skip


@dataclass(frozen=True)
class OptimConfig:
    """AdamW at a constant lr after ``warmup_steps``. Default lr: the paper's policy lr."""

    lr: float = 5e-7  # constant after warm-up
    weight_decay: float = 0.0  # AdamW decoupled weight decay
    beta1: float = 0.9  # AdamW first-moment decay
    beta2: float = 0.999  # AdamW second-moment decay
    grad_clip: float = 1.0  # 0 = off
    warmup_steps: int = 0  # linear lr warm-up (optimizer steps), then constant

    def validate(self, name: str) -> None:
        check(self.lr > 0, f"{name}.lr", self.lr, "> 0")
        check(self.grad_clip >= 0, f"{name}.grad_clip", self.grad_clip, ">= 0")
        check(self.weight_decay >= 0, f"{name}.weight_decay", self.weight_decay, ">= 0")
        check(self.warmup_steps >= 0, f"{name}.warmup_steps", self.warmup_steps, ">= 0")
        check(0 <= self.beta1 < 1, f"{name}.beta1", self.beta1, "in [0, 1)")
        check(0 <= self.beta2 < 1, f"{name}.beta2", self.beta2, "in [0, 1)")


@dataclass(frozen=True)
class SFTConfig:
    # Optimizer steps. The loss falls late: fewer steps, or smaller batches, leave a start
    # too weak for RL (docs/tiny-task.md, "The SFT start").
    steps: int = 1600
    batch_size: int = 64  # SFT rows per optimizer step
    lr: float = 2e-3  # AdamW, constant
    # Global gradient-norm clip; 0 = off. 1 learns faster early (docs/tiny-task.md).
    grad_clip: float = 1.0
    checkpoint: str = "runs/sft-tiny"  # reused if made by the same recipe (sft_recipe.json)
    # A checkpoint shipped with the package and made by this very recipe is copied to
    # `checkpoint` instead of training (SFT is most of a tiny job's time: docs/tiny-task.md).
    # false: train it here. `shipped_dir`: where to look ("" = the package's own folder,
    # prime_megatron/data/sft_checkpoints).
    use_shipped: bool = True
    shipped_dir: str = ""  # where shipped checkpoints are looked for (see use_shipped)

    def validate(self) -> None:
        check(self.steps >= 1, "sft.steps", self.steps, ">= 1")
        check(self.batch_size >= 1, "sft.batch_size", self.batch_size, ">= 1")
        check(self.lr > 0, "sft.lr", self.lr, "> 0")
        check(self.grad_clip >= 0, "sft.grad_clip", self.grad_clip, ">= 0 (0 = off)")
        check_dir_path("sft.checkpoint", self.checkpoint)


@dataclass(frozen=True)
class TrainConfig:
    """The whole job. Every section default is the paper's or the official code's
    (docs/design.md, "Defaults and their sources"); a job's own choices live in its YAML
    under configs/, and the job ``prime-train`` runs with no ``--config`` is
    ``configs/tiny_cpu.yaml``."""

    run: RunConfig = field(default_factory=RunConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    # The implicit PRM's start: the policy's by default, or its own (e.g. a smaller model).
    prm_model: PRMModelConfig = field(default_factory=PRMModelConfig)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)
    batch: BatchConfig = field(default_factory=BatchConfig)
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    # PRIME (implicit PRM on) or outcome-only RLOO (no PRM, no process rewards).
    use_prm: bool = True
    policy_optim: OptimConfig = field(default_factory=OptimConfig)
    # The paper's PRM lr (2x the policy's) and the official clip.
    prm_optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-6, grad_clip=10.0))
    # vLLM starts from the config alone and gets the policy's weights by sync.
    rollout: RolloutConfig = field(default_factory=lambda: RolloutConfig(load_format="dummy"))
    # Files to train on; none with model.source=synthetic, which generates its task's.
    data: DataConfig = field(default_factory=DataConfig)
    # The arithmetic task (model.source=synthetic only).
    synthetic: ArithmeticConfig = field(default_factory=ArithmeticConfig)
    rewards: RewardConfig = field(default_factory=RewardConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)

    @property
    def separate_prm(self) -> bool:
        """The PRM starts from its own checkpoint (``prm_model``), with its own reference."""
        return self.use_prm and self.prm_model.source != ""

    @property
    def loads_reference(self) -> bool:
        """The policy's frozen start is loaded: as the PRM's reference (a PRM sharing the
        policy's start) or for a KL term."""
        prm_reads_it = self.use_prm and self.algo.prm_reference == "sft" and not self.separate_prm
        return prm_reads_it or self.algo.kl_coef > 0

    def validate(self, world_size: int) -> TrainConfig:
        """Check every section and the fields that constrain each other."""
        self.run.validate()
        self.model.validate()
        self.prm_model.validate()
        self.parallel.validate(world_size)
        self.batch.validate()
        self.algo.validate()
        self.policy_optim.validate("policy_optim")
        self.prm_optim.validate("prm_optim")
        self.rollout.validate()
        self.rewards.validate()
        if self.model.source == "synthetic":
            self.synthetic.validate()
            self.sft.validate()
            self._check_synthetic()
        else:
            self.data.validate()
            self._check_given_model()
        self._check_cross_fields(world_size)
        if self.prm_model.source:
            self._check_prm_start()
        return self

    def _check_synthetic(self) -> None:
        """The synthetic model comes with its own task, tokenizer and SFT start."""
        # Its character tokenizer covers only the arithmetic alphabet: other text would be
        # mostly <unk>; refusing beats silently training on the task instead of the files.
        for name in ("train_files", "val_files"):
            value = getattr(self.data, name)
            check(not value, f"data.{name}", value,
                  "must be empty with model.source=synthetic, which trains on its generated "
                  "task (synthetic.*); to train on your files start from a model of yours "
                  "(model.source=megatron or hf, model.path=...)")  # fmt: skip
        check(self.data.prompt_format == "chat", "data.prompt_format", self.data.prompt_format,
              "chat with model.source=synthetic (its SFT and RL prompts use the character "
              "tokenizer's chat template)")  # fmt: skip

    def _check_given_model(self) -> None:
        check(
            self.run.step_credit_every == 0,
            "run.step_credit_every",
            self.run.step_credit_every,
            "0 unless model.source=synthetic (step labels come from the synthetic task)",
        )
        source = self.algo.process_reward_source
        check(source == "prm", "algo.process_reward_source", source,
              "prm unless model.source=synthetic (the oracle's labels come from the "
              "synthetic task)")  # fmt: skip

    def _check_synthetic_layout(self, model: ModelConfig, section: str) -> None:
        """A synthetic model's shape splits over the TP/PP layout."""
        tp, pp = self.parallel.tensor_parallel, self.parallel.pipeline_parallel
        check(model.hidden_size % model.num_heads == 0, f"{section}.num_heads", model.num_heads,
              f"must divide {section}.hidden_size={model.hidden_size} (the head size)")  # fmt: skip
        for name in ("num_heads", "ffn_hidden_size"):
            value = getattr(model, name)
            check(value % tp == 0, f"{section}.{name}", value,
                  f"must be divisible by parallel.tensor_parallel={tp}")  # fmt: skip
        check(model.num_layers % pp == 0, f"{section}.num_layers", model.num_layers,
              f"must be divisible by parallel.pipeline_parallel={pp}")  # fmt: skip

    def _check_prm_start(self) -> None:
        """A PRM of its own start: its log-probs are only comparable with its own
        reference's, never the policy's (another model). Its vocabulary is checked against
        the policy's tokenizer with the files (``trainer/inputs.py``)."""
        source = self.prm_model.source
        check(self.use_prm, "prm_model.source", source,
              "'' with use_prm=false (there is no PRM to start)")  # fmt: skip
        why = f"with prm_model.source={source} (the policy is another model than the PRM)"
        check(self.algo.prm_reference == "sft", "algo.prm_reference", self.algo.prm_reference,
              f"sft {why}: the PRM's reference is its own frozen start")  # fmt: skip
        basis = self.algo.process_reward_basis
        check(basis == "prm_reference", "algo.process_reward_basis", basis,
              f"prm_reference {why}: the PRM's log-probs are compared with its own "
              "reference's")  # fmt: skip
        if source == "synthetic":
            check(self.model.source == "synthetic", "prm_model.source", source,
                  "synthetic only with model.source=synthetic (the PRM trains on its task "
                  "with its tokenizer); give an hf or megatron PRM instead")  # fmt: skip
            self._check_synthetic_layout(self.prm_model.synthetic_model(self.model), "prm_model")

    def _check_cross_fields(self, world_size: int) -> None:
        pp = self.parallel.pipeline_parallel
        budget = self.batch.max_tokens_per_micro_batch
        check(budget == 0 or pp == 1, "batch.max_tokens_per_micro_batch", budget,
              f"0 with parallel.pipeline_parallel={pp} (pipeline stages exchange activations "
              "of one fixed shape)")  # fmt: skip
        if self.model.source == "synthetic":
            self._check_synthetic_layout(self.model, "model")
        warmup = self.algo.prm_warmup_steps
        check(not warmup or self.use_prm, "algo.prm_warmup_steps", warmup,
              "0 with use_prm=false (the warm-up trains the PRM)")  # fmt: skip
        check(warmup < self.run.steps, "algo.prm_warmup_steps", warmup,
              f"must be < run.steps={self.run.steps} (the steps after it update the "
              "policy)")  # fmt: skip
        rtp = self.rollout.tensor_parallel_size
        check(
            world_size % rtp == 0,
            "rollout.tensor_parallel_size",
            rtp,
            f"must divide the world size ({world_size})",
        )
        check(self.rollout.load_format == "dummy", "rollout.load_format",
              self.rollout.load_format, "dummy: the trainer starts vLLM from the config alone "
              "and syncs the policy's weights into it before the first rollout")  # fmt: skip


# The job prime-train runs with no --config: the repository's configs/ folder, which the
# editable install (tools/install.sh) keeps next to the package.
CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
DEFAULT_JOB = CONFIG_DIR / "tiny_cpu.yaml"


def load_train_config(path: str | Path | None = None, overrides: list[str] = ()) -> TrainConfig:
    """The job's config (not yet validated): ``path``, or the default job, then overrides."""
    if path is None:
        if not DEFAULT_JOB.is_file():
            raise ConfigError(
                f"no --config given and the default job {DEFAULT_JOB} is missing (it ships "
                "with the repository; install with `pip install -e .`, or pass --config)"
            )
        path = DEFAULT_JOB
    return load_config(TrainConfig, path, overrides)
