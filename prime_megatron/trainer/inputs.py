"""What a run derives from its validated config, worked out before anything heavy starts.

The config is frozen once validated and saved as ``config.yaml`` exactly as it runs. What
the run derives from it (the data rows, the synthetic task's files, the tokenizer, the
model it starts from, the checkpoint it resumes) is a ``ResolvedInputs``, never written
back into the config; ``resolved_inputs.json`` records it for readers.

``prepare_inputs`` reads and checks every file and directory the config names (each data
row, the start model's metadata, weights index and tokenizer, a resume checkpoint) and
writes nothing, so a bad input fails within seconds, as one line, and leaves no run dir
behind. ``write_run_record`` then creates the run dir.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from prime_megatron.checkpoint import hf_io
from prime_megatron.checkpoint.convert import HF_SIDE_DIR, arch_of
from prime_megatron.checkpoint.hf_io import CheckpointError
from prime_megatron.checkpoint.megatron_io import ModelCheckpointMeta
from prime_megatron.checkpoint.rules import MappingError
from prime_megatron.config.errors import ConfigError
from prime_megatron.config.loader import save_config
from prime_megatron.data import synthetic
from prime_megatron.data.dataset import EmptyDatasetError, PromptDataset
from prime_megatron.data.prompt_lengths import measure_prompt_lengths
from prime_megatron.data.rows import RowError
from prime_megatron.data.template import PromptRenderer
from prime_megatron.data.tokenizer import build_char_tokenizer
from prime_megatron.models.arch import InvalidModelConfigError, ModelArch, UnsupportedModelError
from prime_megatron.models.builder import layer_spec_kind
from prime_megatron.models.hf_factory import hf_config
from prime_megatron.rollout.config import RolloutConfig
from prime_megatron.run_layout import RunLayout
from prime_megatron.trainer.collect import PromptEncoder
from prime_megatron.trainer.config import ModelConfig, TrainConfig
from prime_megatron.trainer.resume import STATE_FILE, complete_checkpoints, unfinished_saves

# Files of which an HF dir needs at least one for AutoTokenizer to find a real vocabulary
# (with none it silently builds an empty tokenizer from config.json alone).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
CHAR_TOKENIZER = "the synthetic task's character tokenizer (prime_megatron/data/tokenizer.py)"
# Training rows whose prompt lengths are measured at start-up: a bounded cost on any dataset.
PROMPT_LENGTH_SAMPLE = 1000

log = logging.getLogger(__name__)


class InputError(ValueError):
    """A file or directory the config names exists but cannot serve as what it is for."""


# Everything ``prepare_inputs`` raises for bad user input: one line each, exit code 2.
INPUT_ERRORS = (
    ConfigError, RowError, EmptyDatasetError, CheckpointError, MappingError,
    InvalidModelConfigError, UnsupportedModelError, InputError,
)  # fmt: skip


@dataclass(frozen=True)
class SFTPlan:
    """The synthetic model's warm-up: trained into ``checkpoint`` unless the checkpoint
    there was made by the same ``recipe``."""

    checkpoint: Path
    recipe: dict
    rows: list[dict]  # prompt + worked solution per synthetic train problem


@dataclass(frozen=True)
class StartModel:
    """Where a model's first weights come from: the policy's (and, unless it has its own,
    the PRM's and the references')."""

    format: str  # "megatron": a prime_megatron checkpoint; "hf": an HF dir, mapped in memory
    path: Path
    hf_config: dict  # the architecture (rollout_model/ and the export write it)
    side_files: Path  # tokenizer and generation files, copied to rollout_model/
    sft: SFTPlan | None = None  # set: ``path`` is made by the SFT warm-up first

    def record(self) -> dict:
        return {"format": self.format, "path": str(self.path), "sft_warmup": self.sft is not None}


@dataclass(frozen=True)
class ResolvedInputs:
    train: PromptDataset
    heldout: PromptDataset | None
    train_files: tuple[str, ...]  # where the rows come from (the run's data/ if synthetic)
    val_files: tuple[str, ...]
    tokenizer: Any
    tokenizer_source: str
    encode: PromptEncoder  # row -> prompt ids (the data config's rendering)
    start: StartModel
    resume: Path | None  # the checkpoint the run continues from (run.resume resolved)
    prm_start: StartModel | None = None  # the PRM's own start (prm_model.source), if any
    # Files the run writes itself (the synthetic task's data), path -> rows.
    generated: dict[Path, list[dict]] = field(default_factory=dict)

    def record(self) -> dict:
        """What ``resolved_inputs.json`` holds."""
        skipped = self.train.skipped + (self.heldout.skipped if self.heldout else Counter())
        return {
            "train_files": list(self.train_files),
            "val_files": list(self.val_files),
            "train_rows": len(self.train),
            "heldout_rows": len(self.heldout) if self.heldout else 0,
            "skipped_rows": dict(skipped),
            "tokenizer": self.tokenizer_source,
            "vocab": len(self.tokenizer),
            "start": self.start.record(),
            "prm_start": None if self.prm_start is None else self.prm_start.record(),
            "resume": None if self.resume is None else str(self.resume),
        }


def prepare_inputs(cfg: TrainConfig, layout: RunLayout) -> ResolvedInputs:
    """Load and check everything a validated config names; writes nothing.

    Raises one of ``INPUT_ERRORS`` (a one-line message naming the file) on bad input,
    including training prompts that never fit ``rollout.max_prompt_len``.
    """
    inputs = resolve_inputs(cfg, layout)
    check_prompt_lengths(inputs)
    return inputs


def resolve_inputs(cfg: TrainConfig, layout: RunLayout) -> ResolvedInputs:
    """``prepare_inputs`` without its prompt-length check (``tools/preflight.py`` reports
    the lengths instead of refusing)."""
    parts = _synthetic_parts(cfg, layout) if cfg.model.source == "synthetic" else _given_parts(cfg)
    tokenizer = parts["tokenizer"]
    _check_start(parts["start"], cfg, max(tokenizer.get_vocab().values()) + 1)
    prm_start = _prm_start(cfg, parts["start"], tokenizer) if cfg.separate_prm else None
    renderer = PromptRenderer(cfg.data.prompt_format, tokenizer, cfg.data.plain_template)
    resume = _resume_checkpoint(cfg.run.resume, layout)
    if resume is not None:
        _check_resume_model(resume, parts["start"])
    return ResolvedInputs(
        **parts,
        encode=PromptEncoder(renderer, tokenizer, cfg.rollout.max_prompt_len),
        resume=resume,
        prm_start=prm_start,
    )


def check_prompt_lengths(inputs: ResolvedInputs) -> None:
    """Refuse rows whose prompts would be skipped forever: every one of the first
    ``PROMPT_LENGTH_SAMPLE`` training (or held-out) rows is over ``rollout.max_prompt_len``.
    Warn (one line) when only some are."""
    _check_lengths(inputs.train.rows, inputs.train_files, inputs.encode,
                   "training would never get a prompt")  # fmt: skip
    if inputs.heldout is not None:
        _check_lengths(inputs.heldout.rows, inputs.val_files, inputs.encode,
                       "the held-out evaluation would score no prompt")  # fmt: skip


def _check_lengths(rows: list, files: tuple[str, ...], encode: PromptEncoder, why: str) -> None:
    limit = encode.max_prompt_len
    lengths = measure_prompt_lengths(rows, encode.token_ids, limit, PROMPT_LENGTH_SAMPLE)
    where = f"the first {lengths.checked} rows of {list(files)}"
    if lengths.none_fit:
        raise InputError(
            f"rollout.max_prompt_len={limit}: every prompt of {where} is longer (the shortest "
            f"is {lengths.shortest} tokens as rendered, chat template included), so {why}; "
            "raise rollout.max_prompt_len or shorten the prompts"
        )
    if lengths.too_long:
        log.warning(
            "%d of %s are longer than rollout.max_prompt_len=%d tokens and will be skipped",
            lengths.too_long, where, limit,
        )  # fmt: skip


def write_run_record(layout: RunLayout, cfg: TrainConfig, inputs: ResolvedInputs) -> None:
    """Create the run dir: the generated data files, ``config.yaml`` (the validated config,
    as it runs) and ``resolved_inputs.json``. Rank 0 only."""
    layout.root.mkdir(parents=True, exist_ok=True)
    for path, rows in inputs.generated.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        synthetic.write_jsonl(rows, str(path))
    save_config(cfg, layout.config)
    layout.resolved_inputs.write_text(json.dumps(inputs.record(), indent=2) + "\n")


def load_tokenizer(directory: Path):
    """The tokenizer of an HF-style dir, refusing a dir without tokenizer files."""
    if not any((Path(directory) / name).is_file() for name in TOKENIZER_FILES):
        raise InputError(f"{directory}: no tokenizer files (expected one of {TOKENIZER_FILES})")
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(directory)
    except (OSError, ValueError) as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise InputError(f"{directory}: cannot load the tokenizer: {first_line}") from e


# ---- the synthetic task ----------------------------------------------------------------


def _synthetic_parts(cfg: TrainConfig, layout: RunLayout) -> dict[str, Any]:
    """The task's RL rows (written to data/ when the run starts), the character tokenizer
    and the SFT start trained on the train problems' worked solutions."""
    task = cfg.synthetic
    train, heldout = synthetic.make_splits(
        task.train_prompts, task.heldout_prompts, task, cfg.run.seed
    )
    rows = {split: [synthetic.rl_row(p, i, split) for i, p in enumerate(problems)]
            for split, problems in (("train", train), ("heldout", heldout))}  # fmt: skip
    train_file, heldout_file = str(layout.train_data), str(layout.heldout_data)
    tokenizer = build_char_tokenizer()
    return dict(
        train=PromptDataset.from_rows(rows["train"], train_file),
        heldout=PromptDataset.from_rows(rows["heldout"], heldout_file) if heldout else None,
        train_files=(train_file,), val_files=(heldout_file,) if heldout else (),
        tokenizer=tokenizer, tokenizer_source=CHAR_TOKENIZER,
        generated={layout.train_data: rows["train"], layout.heldout_data: rows["heldout"]},
        start=_sft_start(cfg, tokenizer, synthetic.sft_rows(train, task, cfg.run.seed)),
    )  # fmt: skip


def synthetic_hf_config(cfg: TrainConfig, tokenizer, model: ModelConfig | None = None) -> dict:
    """The HF config of the synthetic model of shape ``model`` (default: ``cfg.model``)."""
    model = model or cfg.model
    config = hf_config(
        "Qwen2ForCausalLM",
        vocab_size=len(tokenizer),
        hidden_size=model.hidden_size,
        intermediate_size=model.ffn_hidden_size,
        num_hidden_layers=model.num_layers,
        num_attention_heads=model.num_heads,
        num_key_value_heads=model.num_heads,
        head_dim=model.hidden_size // model.num_heads,
        max_position_embeddings=model.max_position_embeddings,
        rope_theta=10000.0,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return config.to_dict()


def _sft_start(
    cfg: TrainConfig, tokenizer, sft_rows: list[dict], model: ModelConfig | None = None,
    checkpoint: str = "",
) -> StartModel:  # fmt: skip
    """The synthetic model of shape ``model`` (default: ``cfg.model``) starts from its SFT
    checkpoint (default: ``sft.checkpoint``), keyed by everything that makes it."""
    model = model or cfg.model
    recipe = {
        "model": asdict(model),
        "sft": asdict(cfg.sft),
        "synthetic": asdict(cfg.synthetic),
        "seed": cfg.run.seed,
        "vocab": len(tokenizer),
    }
    for where in ("checkpoint", "use_shipped", "shipped_dir"):  # where, not what, it trains
        recipe["sft"].pop(where)
    recipe["model"].pop("offload_idle")  # where idle weights wait does not change them
    shipped = cfg.sft.shipped_dir
    if shipped and not Path(shipped).is_dir():
        raise InputError(f"sft.shipped_dir={shipped}: no such directory")
    ckpt = Path(checkpoint or cfg.sft.checkpoint)
    return StartModel(
        "megatron", ckpt, synthetic_hf_config(cfg, tokenizer, model), ckpt / HF_SIDE_DIR,
        sft=SFTPlan(ckpt, recipe, sft_rows),
    )  # fmt: skip


# ---- a given checkpoint ----------------------------------------------------------------


def _given_parts(cfg: TrainConfig) -> dict[str, Any]:
    """The user's data files and model dir, each row and the model's files checked."""
    data = cfg.data
    train = PromptDataset.load(data.train_files, data.skip_bad_rows, data.row_defaults())
    heldout = (
        PromptDataset.load(data.val_files, data.skip_bad_rows, data.row_defaults())
        if data.val_files
        else None
    )
    start = _checkpoint_start(cfg.model.source, Path(cfg.model.path), cfg.parallel.tensor_parallel)
    return dict(
        train=train, heldout=heldout, train_files=tuple(data.train_files),
        val_files=tuple(data.val_files), tokenizer=load_tokenizer(start.side_files),
        tokenizer_source=str(start.side_files), start=start,
    )  # fmt: skip


def _checkpoint_start(source: str, path: Path, tp: int) -> StartModel:
    """The model dir ``path`` of ``source`` (hf or megatron) as a start: its metadata and
    weight files checked, nothing loaded."""
    if source == "hf":
        config = hf_io.read_hf_config(path)
        hf_io.shard_files(path)  # every listed shard exists
        return StartModel("hf", path, config, path)
    meta = ModelCheckpointMeta.read(path)
    if not (path / "metadata.json").is_file():
        raise CheckpointError(f"{path}: no Megatron dist checkpoint (metadata.json missing)")
    if meta.padded_vocab_size % tp:
        raise InputError(
            f"{path}: padded vocab size {meta.padded_vocab_size} is not divisible by "
            f"parallel.tensor_parallel={tp}; re-convert the checkpoint with --tp {tp}"
        )
    return StartModel("megatron", path, meta.hf_config, path / HF_SIDE_DIR)


# ---- the PRM's own start ---------------------------------------------------------------


def _prm_start(cfg: TrainConfig, policy: StartModel, tokenizer) -> StartModel:
    """The PRM's start (``prm_model``), checked as the policy's, of the policy's vocabulary.
    A synthetic PRM is SFT-trained on the policy's SFT rows, by its recipe."""
    prm = cfg.prm_model
    if prm.source == "synthetic":
        start = _sft_start(cfg, tokenizer, policy.sft.rows, prm.synthetic_model(cfg.model),
                           prm.sft_checkpoint_of(cfg.sft))  # fmt: skip
    else:
        start = _checkpoint_start(prm.source, Path(prm.path), cfg.parallel.tensor_parallel)
    _check_start(start, cfg, max(tokenizer.get_vocab().values()) + 1)
    _check_prm_vocab(start, policy, tokenizer)
    return start


def _check_prm_vocab(prm: StartModel, policy: StartModel, tokenizer) -> None:
    """The PRM reads the policy's samples token by token: same vocabulary, same tokenizer
    (when the PRM's dir has one to compare)."""
    theirs = arch_of(prm.hf_config, prm.path).vocab_size
    ours = arch_of(policy.hf_config, policy.path).vocab_size
    if theirs != ours:
        raise InputError(
            f"prm_model: {prm.path} has vocab_size={theirs}, the policy {ours}; the PRM must "
            "use the policy's tokenizer and vocabulary"
        )
    has_tokenizer = any((Path(prm.side_files) / name).is_file() for name in TOKENIZER_FILES)
    if prm.sft is not None or not has_tokenizer:
        return  # a synthetic PRM is built with the policy's tokenizer
    if load_tokenizer(prm.side_files).get_vocab() != tokenizer.get_vocab():
        raise InputError(
            f"prm_model: {prm.side_files} holds another tokenizer than the policy's "
            f"({len(tokenizer)} tokens); the PRM must use the policy's tokenizer"
        )


def _check_start(start: StartModel, cfg: TrainConfig, ids_needed: int) -> None:
    """The start model fits the layout and the tokenizer's ids fit the model (its highest id,
    not its token count: real vocabularies have gaps)."""
    arch = arch_of(start.hf_config, start.path)
    tp, pp = cfg.parallel.tensor_parallel, cfg.parallel.pipeline_parallel
    try:
        arch.check_layout(tp, pp)
    except ValueError as e:
        raise InputError(f"{start.path}: {e}") from e
    if cfg.batch.pack_sequences and layer_spec_kind() == "te":
        raise InputError(
            "batch.pack_sequences=true: not supported with Transformer-Engine attention yet "
            "(its causal kernel ignores the block-diagonal mask that keeps packed rows apart); "
            "use batch.max_tokens_per_micro_batch alone"
        )
    if arch.tie_word_embeddings and pp > 1:
        raise InputError(
            f"{start.path}: training a model with tied embeddings under pipeline parallelism "
            "is not supported yet (the embedding gradient is not synchronised across stages)"
        )
    if ids_needed > arch.vocab_size:
        raise InputError(
            f"{start.side_files}: the tokenizer's ids reach {ids_needed - 1}, past the "
            f"model's vocab_size={arch.vocab_size}"
        )
    _check_positions(arch, cfg.rollout, start.path)


def _check_positions(arch: ModelArch, rollout: RolloutConfig, path: Path) -> None:
    """Prompt plus answer fit the model's positions: vLLM refuses a longer max_model_len,
    but only after its start-up (a long pydantic traceback)."""
    # vLLM stretches the limit by a linear RoPE scaling factor, not by llama3's.
    scale = arch.rope_scaling_factor if arch.rope_scaling == "linear" else 1.0
    limit = int(arch.max_position_embeddings * scale)
    if rollout.max_model_len > limit:
        raise InputError(
            f"rollout.max_prompt_len={rollout.max_prompt_len} + rollout.max_response_len="
            f"{rollout.max_response_len} = {rollout.max_model_len} tokens is more than the "
            f"model's {limit} positions (max_position_embeddings of {path}); lower them"
        )


def _resume_checkpoint(resume: str, layout: RunLayout) -> Path | None:
    if resume == "never":
        return None
    if resume == "auto":
        found = complete_checkpoints(layout.checkpoints)
        latest = found[-1] if found else None
        for partial in unfinished_saves(layout.checkpoints):
            start = f"resuming from {latest.name}" if latest else "starting from step 0"
            log.warning("%s is a save the run was stopped in the middle of: ignored, %s",
                        partial, start)  # fmt: skip
        return latest
    path = Path(resume)
    if not (path / STATE_FILE).is_file():
        raise InputError(f"run.resume={resume}: no {STATE_FILE}, not a complete checkpoint")
    return path


# ModelArch fields that fix the weights' shapes: a checkpoint differing in one cannot load.
SHAPE_FIELDS = ("architecture", "vocab_size", "hidden_size", "ffn_hidden_size", "num_layers",
                "num_attention_heads", "num_query_groups", "head_dim", "qkv_bias",
                "tie_word_embeddings")  # fmt: skip


def _check_resume_model(checkpoint: Path, start: StartModel) -> None:
    """The checkpoint holds this run's model, by the architecture its own run recorded
    (``<run>/rollout_model/config.json``): found here in milliseconds, where loading it
    fails only after every model is built. Without that record the load itself reports it."""
    recorded = RunLayout(checkpoint.parent.parent).rollout_model
    if not (recorded / "config.json").is_file():
        return
    theirs = arch_of(hf_io.read_hf_config(recorded), recorded).to_dict()
    ours = arch_of(start.hf_config, start.path).to_dict()
    differ = [f"{k} {theirs[k]} vs {ours[k]}" for k in SHAPE_FIELDS if theirs[k] != ours[k]]
    if differ:
        raise InputError(
            f"run.resume: {checkpoint} is a checkpoint of another model shape (checkpoint vs "
            f"this run: {', '.join(differ)}); resume one of this model, or start afresh with "
            "run.resume=never or another run.output_dir"
        )
