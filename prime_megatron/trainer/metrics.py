"""Per-step metrics to the console, ``metrics.jsonl``, TensorBoard and (optionally) wandb.

Only rank 0 writes; metrics are identical on every rank by construction.
"""

from __future__ import annotations

import json
import math
import sys
import time

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


class MetricsLogger:
    def __init__(
        self, layout: RunLayout, total_steps: int, tensorboard: bool, wandb_project: str,
        config: dict,
    ) -> None:  # fmt: skip
        self.total_steps = total_steps
        self.jsonl = open(layout.metrics, "a")  # noqa: SIM115 (lives for the run)
        self.tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(layout.tensorboard))
        self.wandb = None
        if wandb_project:
            import wandb  # optional dependency; config validation names it

            self.wandb = wandb.init(project=wandb_project, dir=str(layout.root), config=config)
        self.start = time.perf_counter()

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
        print(self._console_line(step, metrics), flush=True)

    def _console_line(self, step: int, metrics: dict[str, float]) -> str:
        done = step / max(self.total_steps, 1)
        bar = "#" * int(20 * done) + "." * (20 - int(20 * done))
        elapsed = time.perf_counter() - self.start
        eta = elapsed / max(done, 1e-9) - elapsed
        parts = [f"{short} {metrics[key]:.3f}" for key, short in CONSOLE_KEYS if key in metrics]
        return (
            f"[{bar}] step {step}/{self.total_steps} | " + " | ".join(parts) + f" | eta {eta:.0f}s"
        )

    def event(self, name: str, values: dict) -> None:
        """A non-step record (e.g. evaluation before/after RL) in the same jsonl."""
        self.jsonl.write(json.dumps({"event": name, **values}) + "\n")
        self.jsonl.flush()
        print(
            f"{name}: " + ", ".join(f"{k}={v}" for k, v in values.items()),
            file=sys.stdout,
            flush=True,
        )

    def close(self) -> None:
        self.jsonl.close()
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()


def _clean(value):
    return value if not isinstance(value, float) or math.isfinite(value) else None
