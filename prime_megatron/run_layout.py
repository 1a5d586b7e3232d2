"""What a run directory holds, named once for everything that writes or reads it.

The trainer writes a run, the export and the tools read its pieces, and the evidence
benchmarks launch runs and read them back; they all go through ``RunLayout`` so a name can
change in one place. It sits outside ``trainer/`` because ``evidence/`` must not import the
trainer. ``<run.output_dir>/``::

    config.yaml            the validated config, exactly as it ran (never edited after)
    resolved_inputs.json   what the run derived from it: data files, tokenizer, start model
    data/                  the synthetic task's train.jsonl / heldout.jsonl (synthetic only)
    rollout_model/         config + tokenizer files vLLM starts from (weights come by sync)
    checkpoints/           step_NNNNNN/ RL checkpoints (trainer/resume.py)
    samples/               step_NNNNNN.jsonl sample dumps (run.dump_samples_every)
    policy_hf/             the final policy as an HF checkpoint (run.export_hf)
    prm_hf/                the trained implicit PRM, likewise (run.export_prm_hf)
    metrics.jsonl          one line per step, plus eval_before / eval_after events
    eval/                  eval_before.jsonl, eval_after.jsonl (greedy) and their _sampled
                           twins: every held-out response with its row and score
    metrics.png            curves of metrics.jsonl (run.plot)
    tensorboard/           TensorBoard events (run.tensorboard)
    wandb/                 wandb's own files (run.wandb_project)
    logs/rank_N.log        rank N's full log: upstream (vLLM, Megatron) records and warnings
    train.log              the trainer's console output, when a launcher keeps it
    benchmark_done.json    the evidence benchmarks' finished-run marker
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RunLayout:
    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def resolved_inputs(self) -> Path:
        return self.root / "resolved_inputs.json"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def train_data(self) -> Path:
        return self.data / "train.jsonl"

    @property
    def heldout_data(self) -> Path:
        return self.data / "heldout.jsonl"

    @property
    def rollout_model(self) -> Path:
        return self.root / "rollout_model"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def samples(self) -> Path:
        return self.root / "samples"

    def sample_dump(self, step: int) -> Path:
        return self.samples / f"step_{step:06d}.jsonl"

    def sample_dumps(self) -> list[Path]:
        """Every sample dump of the run, in step order."""
        return sorted(self.samples.glob("step_*.jsonl"))

    def log_file(self, rank: int) -> Path:
        return self.root / "logs" / f"rank_{rank}.log"

    @property
    def policy_hf(self) -> Path:
        return self.root / "policy_hf"

    @property
    def prm_hf(self) -> Path:
        return self.root / "prm_hf"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    def eval_responses(self, name: str) -> Path:
        """The held-out responses of evaluation ``name`` (e.g. "eval_after_sampled")."""
        return self.root / "eval" / f"{name}.jsonl"

    @property
    def metrics_plot(self) -> Path:
        return self.root / "metrics.png"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tensorboard"

    @property
    def train_log(self) -> Path:
        return self.root / "train.log"

    @property
    def benchmark_done(self) -> Path:
        return self.root / "benchmark_done.json"

    def looks_like_run(self) -> bool:
        """Whether ``root`` holds a run (so a launcher may replace it), not someone's files."""
        return any(p.exists() for p in (self.config, self.train_log, self.benchmark_done))


def read_metrics(run_dir: Path | RunLayout) -> list[dict]:
    """Every record of a run's ``metrics.jsonl`` (steps and events), in file order."""
    layout = run_dir if isinstance(run_dir, RunLayout) else RunLayout(run_dir)
    return [json.loads(line) for line in layout.metrics.read_text().splitlines() if line.strip()]
