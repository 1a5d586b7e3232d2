"""Supervised warm-up of the default job's tiny model on worked solutions.

PRIME starts RL from an SFT model; the tiny synthetic model starts from random weights, so
it first learns the solution format here, with the same Megatron builder, passes and
optimizer as RL (any TP/PP layout). Loss: mean negative log-likelihood of the solution
tokens (prompt tokens are not trained on). The checkpoint is reused when its recorded
recipe matches; a checkpoint shipped with the package (``SHIPPED_DIR``) and made by the
same recipe is copied in instead of training, as an RL run elsewhere starts from a
released SFT model.
"""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Callable
from pathlib import Path

from prime_megatron.console import Progress
from prime_megatron.distributed.init import ParallelGroups
from prime_megatron.passes.batch import SampleBatch
from prime_megatron.passes.run import run_pass
from prime_megatron.trainer.optim import ShardedAdamW

RECIPE_FILE = "sft_recipe.json"
# Shipped checkpoints: one folder each, with its RECIPE_FILE and PROVENANCE_FILE.
SHIPPED_DIR = Path(__file__).resolve().parents[1] / "data" / "sft_checkpoints"
PROVENANCE_FILE = "provenance.json"  # where, when and how long it was trained; its quality


def sft_examples(
    rows: list[dict], encode: Callable, tokenizer
) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, solution ids + EOS) per SFT row."""
    out = []
    for row in rows:
        prompt = encode(row["prompt"])
        response = tokenizer.encode(row["response"], add_special_tokens=False)
        out.append((prompt, response + [tokenizer.eos_token_id]))
    return out


def _nll_loss(logp, _entropy, mb: SampleBatch, denom: float):
    loss = -(logp * mb.mask).sum() / denom
    return loss, {"nll": float(loss.detach())}


def run_sft(
    model,
    parallel: ParallelGroups,
    examples: list[tuple[list[int], list[int]]],
    steps: int,
    batch_size: int,
    lr: float,
    micro_batch_size: int,
    pad_id: int,
    seed: int,
    grad_clip: float = 0.0,
    show_progress: bool = True,
    *,
    vocab_size: int,
) -> list[float]:
    """Train ``model`` in place; returns the loss per step (identical on every rank).
    ``show_progress``: a progress bar on this rank's console (rank 0 only, in a job).
    ``vocab_size``: the real vocabulary (the model's output layer is padded beyond it)."""
    opt = ShardedAdamW(
        list(model.parameters()), parallel, lr=lr, grad_clip=grad_clip,
        warmup_steps=max(1, steps // 20), total_steps=steps, min_lr_ratio=0.05,
    )  # fmt: skip
    rng = random.Random(f"sft/{seed}")
    losses: list[float] = []
    progress = Progress(steps, "SFT", line_every=50) if show_progress else None
    for step in range(steps):
        batch = SampleBatch.from_pairs(rng.sample(examples, batch_size), pad_id)
        denom = float(batch.mask.sum())
        result = run_pass(
            model, parallel, batch, micro_batch_size,
            loss_fn=lambda lp, e, mb, d=denom: _nll_loss(lp, e, mb, d),
            vocab_size=vocab_size,
        )  # fmt: skip
        opt.step()
        losses.append(result.metrics["nll"])
        if progress is not None:
            progress.update(step + 1, f"nll {losses[-1]:.4f}")  # closes itself at the end
    return losses


def recipe_matches(ckpt_dir: Path, recipe: dict) -> bool:
    path = Path(ckpt_dir) / RECIPE_FILE
    return path.is_file() and json.loads(path.read_text()) == recipe


def write_recipe(ckpt_dir: Path, recipe: dict) -> None:
    (Path(ckpt_dir) / RECIPE_FILE).write_text(json.dumps(recipe, indent=2, sort_keys=True))


def find_shipped(recipe: dict, root: Path = SHIPPED_DIR) -> Path | None:
    """The shipped checkpoint under ``root`` made by ``recipe``, or None."""
    if not root.is_dir():
        return None
    return next((d for d in sorted(root.iterdir()) if recipe_matches(d, recipe)), None)


def install_shipped(shipped: Path, ckpt_dir: Path) -> dict:
    """Copy ``shipped`` to ``ckpt_dir`` (replacing whatever is there; via a sibling, so a
    crash leaves no half copy) and return its provenance record ({} without one)."""
    ckpt_dir = Path(ckpt_dir)
    staging = ckpt_dir.parent / f".{ckpt_dir.name}.copying"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(shipped, staging)
    shutil.rmtree(ckpt_dir, ignore_errors=True)
    staging.rename(ckpt_dir)
    made = shipped / PROVENANCE_FILE
    return json.loads(made.read_text()) if made.is_file() else {}
