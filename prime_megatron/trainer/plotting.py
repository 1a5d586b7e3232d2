"""PNG curves of a run's ``metrics.jsonl`` (used at the end of a run and by tools/plot_run.py)."""

from __future__ import annotations

from pathlib import Path

from prime_megatron.run_layout import RunLayout, read_metrics

DEFAULT_KEYS = (
    "rollout/accuracy",
    "prm/pairwise_acc",
    "prm/outcome_auroc",
    "credit/prm_auroc",
    "credit/confidence_sft_auroc",
    "filter/keep_rate",
    "train/entropy",
    "train/kl_to_ref",
    "adv/std",
    "policy/grad_norm",
    "prm/loss",
    "prm/abs_q",
    "mismatch/rollout_vs_trainer_abs_mean",
    "rollout/response_len",
    "time/step",
)


def plot_metrics(
    run_dir: Path, out: Path | None = None, keys: tuple[str, ...] = DEFAULT_KEYS
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layout = RunLayout(run_dir)
    records = [r for r in read_metrics(layout) if "step" in r and "event" not in r]
    present = [k for k in keys if any(r.get(k) is not None for r in records)]
    if not present:
        raise ValueError(f"{layout.metrics} has none of the metrics {list(keys)}")
    cols = 3
    rows = -(-len(present) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.8 * rows), squeeze=False)
    for ax, key in zip(axes.flat, present, strict=False):
        points = [(r["step"], r[key]) for r in records if r.get(key) is not None]
        ax.plot(*zip(*points, strict=True), marker=".", linewidth=1)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(present) :]:
        ax.axis("off")
    fig.tight_layout()
    out = Path(out) if out else layout.metrics_plot
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out
