"""Per-step metrics to the console, ``metrics.jsonl``, TensorBoard and (optionally) wandb.

Only rank 0 writes; metrics are identical on every rank by construction.
"""

from __future__ import annotations

import json
import math

from prime_megatron.console import Progress, say
from prime_megatron.run_layout import RunLayout

CONSOLE_KEYS = (
    ("rollout/accuracy", "acc"),
    ("prm/pairwise_acc", "prm_pair"),
    ("prm/outcome_auroc", "prm_auc"),
    ("credit/prm_auroc", "step_auc"),
    ("filter/keep_rate", "keep"),
    ("train/entropy", "ent"),
    ("train/kl_to_ref", "kl"),
    ("mismatch/rollout_vs_trainer_abs_mean", "mism"),
    ("time/step", "s/step"),
)
# What an event's console line shows (all of it is in metrics.jsonl).
EVENT_KEYS = (
    ("pass@1", "greedy pass@1"),
    ("sampled_pass@1", "sampled pass@1"),
)


class MetricsLogger:
    def __init__(
        self, layout: RunLayout, total_steps: int, tensorboard: bool, wandb_project: str,
        config: dict,
    ) -> None:  # fmt: skip
        self.total_steps, self.layout, self.tensorboard = total_steps, layout, tensorboard
        self.jsonl = open(layout.metrics, "a")  # noqa: SIM115 (lives for the run)
        self.tb = None  # opened by begin(), which knows the step a resumed run re-runs from
        self.wandb = None
        if wandb_project:
            import wandb  # optional dependency; config validation names it

            self.wandb = wandb.init(project=wandb_project, dir=str(layout.root), config=config)
        self.progress: Progress | None = None

    def log(self, step: int, metrics: dict[str, float]) -> None:
        record = {"step": step, **{k: _clean(v) for k, v in metrics.items()}}
        self.jsonl.write(json.dumps(record) + "\n")
        self.jsonl.flush()
        if self.tb is not None:
            for key, value in metrics.items():
                if isinstance(value, (int, float)) and math.isfinite(value):
                    self.tb.add_scalar(key, value, step)
            self.tb.flush()
        if self.wandb is not None:
            self.wandb.log(metrics, step=step)
        self.progress.update(step, self._console_postfix(metrics))

    def begin(self, step: int) -> None:
        """The RL progress bar, from ``step`` (> 0 after a resume). A resumed run re-runs the
        steps after its checkpoint: their records from before the crash are dropped, in
        metrics.jsonl and (``purge_step``) in TensorBoard, so each step appears once."""
        if step:
            self._drop_records_after(step)
        if self.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            purge = step + 1 if step else None
            self.tb = SummaryWriter(str(self.layout.tensorboard), purge_step=purge)
        self.progress = Progress(self.total_steps, "RL", initial=step)

    def _drop_records_after(self, step: int) -> None:
        self.jsonl.close()
        lines = self.layout.metrics.read_text().splitlines(keepends=True)
        kept = _lines_through(lines, step)
        self.layout.metrics.write_text("".join(kept))
        self.jsonl = open(self.layout.metrics, "a")  # noqa: SIM115 (lives for the run)
        if len(kept) < len(lines):
            say(f"{self.layout.metrics}: dropped {len(lines) - len(kept)} records written "
                f"after step {step}, the checkpoint resumed (those steps run again)")  # fmt: skip

    def _console_postfix(self, metrics: dict[str, float]) -> str:
        return " | ".join(f"{short} {metrics[key]:.3f}" for key, short in CONSOLE_KEYS
                          if key in metrics)  # fmt: skip

    def event(self, name: str, values: dict) -> None:
        """A non-step record (e.g. evaluation before/after RL) in the same jsonl."""
        self.jsonl.write(json.dumps({"event": name, **values}) + "\n")
        self.jsonl.flush()
        shown = [f"{label} {values[key]:.3f}" for key, label in EVENT_KEYS if key in values]
        say(f"{name} ({values.get('prompts', 0):.0f} prompts): " + ", ".join(shown))

    def close(self) -> None:
        if self.progress is not None:
            self.progress.close()
        self.jsonl.close()
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()


def _lines_through(lines: list[str], step: int) -> list[str]:
    """The leading lines of a metrics.jsonl written up to ``step``: everything from the
    first later step's record on (or a line the kill cut short) came after the checkpoint."""
    kept = []
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            break
        if record.get("step", 0) > step:
            break
        kept.append(line)
    return kept


def _clean(value):
    return value if not isinstance(value, float) or math.isfinite(value) else None
