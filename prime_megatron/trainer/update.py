"""The learning half of a PRIME step: log-probs -> implicit rewards -> PRM update ->
advantages -> PPO policy update (DESIGN.md 2.4-2.7), over one batch of filtered groups.

The math is ``prime_megatron.algo``; this module only feeds it tensors computed by the
Megatron models and turns its outputs into losses whose gradients add up correctly over
micro-batches and data-parallel ranks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor

from prime_megatron.algo import (
    aggregate_loss,
    dpo_opposite_q,
    implicit_process_rewards,
    kl_k3,
    ppo_policy_loss,
    prime_advantages,
    prm_ce_loss,
    prm_dpo_loss,
    sequence_q,
)
from prime_megatron.algo.config import AlgoConfig
from prime_megatron.distributed.init import ParallelGroups
from prime_megatron.resharding.verify import logprob_mismatch
from prime_megatron.trainer.batch import SampleBatch, split_even
from prime_megatron.trainer.optim import ShardedAdamW
from prime_megatron.trainer.passes import run_pass


@dataclass
class Models:
    """This rank's chunks of the three models; ``prm``/``ref`` are None when unused."""

    policy: torch.nn.Module
    policy_opt: ShardedAdamW
    prm: torch.nn.Module | None = None
    prm_opt: ShardedAdamW | None = None
    ref: torch.nn.Module | None = None


@dataclass
class UpdateSettings:
    algo: AlgoConfig
    use_prm: bool
    mini_batches: int
    micro_batch_size: int
    temperature: float


class PhaseTimer:
    """Accumulates wall-clock seconds per named phase (``with timer("rollout"): ...``);
    ``on_enter(name)`` runs first on entering a phase (the offloader's hook), timed with it."""

    def __init__(self, on_enter: Callable[[str], None] | None = None) -> None:
        self.seconds: dict[str, float] = {}
        self.on_enter = on_enter

    @contextmanager
    def __call__(self, name: str):
        start = time.perf_counter()
        if self.on_enter is not None:
            self.on_enter(name)
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


@dataclass
class LearnResult:
    metrics: dict[str, float]  # identical on every rank
    # [N, S-1] log pi_prm - log pi_ref of the PRM that scored the batch (0 off-mask), or None
    # without a PRM: the implicit process reward before beta and normalisation.
    token_q: Tensor | None


def learn(
    models: Models, groups: ParallelGroups, batch: SampleBatch, s: UpdateSettings, timer: PhaseTimer
) -> LearnResult:
    """One PRIME update on ``batch``."""
    a, mbs, temp = s.algo, s.micro_batch_size, s.temperature
    metrics: dict[str, float] = {}
    with timer("logprobs"):
        old = run_pass(models.policy, groups, batch, mbs, temp, with_entropy=True)
        ref_logp = None
        if models.ref is not None:
            ref_logp = run_pass(models.ref, groups, batch, mbs, temp).logp
    process_rewards = token_q = None
    if s.use_prm:
        prm_logp = _prm_phase(models, groups, batch, ref_logp, s, timer, metrics)
        token_q = (prm_logp - ref_logp) * batch.mask
        process_rewards = implicit_process_rewards(
            prm_logp, ref_logp, batch.mask, a.beta, a.reward_granularity, a.process_reward_norm
        )
        _prm_metrics(prm_logp, ref_logp, batch, process_rewards, metrics)
    advantages, _ = prime_advantages(
        batch.outcome, process_rewards, batch.mask, batch.group, a.gamma,
        a.process_baseline, a.whiten, a.outcome_coef, a.process_coef,
    )  # fmt: skip
    _batch_metrics(batch, old.logp, old.entropy, ref_logp, advantages, metrics)
    with timer("policy_update"):
        metrics.update(_policy_update(models, groups, batch, old.logp, advantages, ref_logp, s))
    return LearnResult(metrics, token_q)


def _prm_phase(models, groups, batch, ref_logp, s: UpdateSettings, timer, metrics) -> Tensor:
    """PRM log-probs used for the rewards, and the PRM update, in the configured order."""
    if s.algo.prm_update == "before":
        with timer("prm_update"):
            metrics.update(_prm_update(models, groups, batch, ref_logp, s))
        with timer("logprobs"):
            return run_pass(models.prm, groups, batch, s.micro_batch_size, s.temperature).logp
    # "after" (single forward): the update's own forward gives the pre-update log-probs.
    with timer("prm_update"):
        logp, update_metrics = _prm_update(models, groups, batch, ref_logp, s, return_logp=True)
    metrics.update(update_metrics)
    return logp


def _prm_update(models, groups, batch, ref_logp, s: UpdateSettings, return_logp: bool = False):
    a = s.algo
    n = batch.size
    batch = batch.with_extras(ref_logp=ref_logp)
    if a.prm_loss == "dpo":
        # Pairs span a whole group, which micro-batches may split: compare against the
        # group's pre-update Q, computed for the full batch first (as the official code).
        q = sequence_q(
            run_pass(models.prm, groups, batch, s.micro_batch_size).logp, ref_logp, batch.mask
        )
        batch = batch.with_extras(opposite_q=dpo_opposite_q(q, batch.outcome, batch.group))

    def loss_fn(logp, _ent, mb: SampleBatch):
        ref = mb.extras["ref_logp"]
        if a.prm_loss == "ce":
            loss = prm_ce_loss(logp, ref, mb.mask, mb.outcome, a.beta)
        else:
            loss = prm_dpo_loss(logp, ref, mb.mask, mb.outcome, mb.extras["opposite_q"], a.beta)
        loss = loss * (mb.size / n)  # a mean over the batch, in micro-batch shares
        return loss, {"prm_loss": float(loss.detach())}

    result = run_pass(models.prm, groups, batch, s.micro_batch_size, s.temperature, loss_fn=loss_fn)
    stats = models.prm_opt.step()
    metrics = {"prm/loss": result.metrics.get("prm_loss", 0.0), "prm/grad_norm": stats["grad_norm"]}
    return (result.logp, metrics) if return_logp else metrics


def _policy_update(models, groups, batch, old_logp, advantages, ref_logp, s: UpdateSettings):
    a = s.algo
    extras = {"old_logp": old_logp, "advantages": advantages}
    if ref_logp is not None and a.kl_coef > 0:
        extras["ref_logp"] = ref_logp
    batch = batch.with_extras(**extras)
    totals: dict[str, float] = {}
    # Mini-batches are whole prompt groups, so each optimizer step sees complete groups.
    group_slices = split_even(int(batch.group.max()) + 1, s.mini_batches)
    for gs in group_slices:
        rows = (batch.group >= gs.start) & (batch.group < gs.stop)
        mini = batch.select(rows.nonzero().squeeze(-1))
        denom = float(mini.mask.sum()) if a.loss_agg == "token-mean" else float(mini.size)
        result = run_pass(
            models.policy, groups, mini, s.micro_batch_size, s.temperature,
            with_entropy=a.entropy_coef > 0, loss_fn=_ppo_loss_fn(a, denom),
        )  # fmt: skip
        stats = models.policy_opt.step()
        for k, v in {**result.metrics, "grad_norm": stats["grad_norm"], "lr": stats["lr"]}.items():
            totals[k] = totals.get(k, 0.0) + v / len(group_slices)
    return {f"policy/{k}": v for k, v in totals.items()}


def _ppo_loss_fn(a: AlgoConfig, denom: float):
    def loss_fn(logp, ent, mb: SampleBatch):
        x = mb.extras
        loss, m = ppo_policy_loss(
            logp, x["old_logp"], x["advantages"], mb.mask, a.clip_eps, a.loss_agg,
            entropy=ent, entropy_coef=a.entropy_coef,
            ref_logp=x.get("ref_logp"), kl_coef=a.kl_coef, denominator=denom,
        )  # fmt: skip
        # pg_loss etc. are already shares of the global mean (same denominator): they add up.
        share = (
            float(mb.mask.sum()) / max(denom, 1.0)
            if a.loss_agg == "token-mean"
            else mb.size / denom
        )
        out = {"loss": float(loss.detach()), "pg_loss": float(m["pg_loss"])}
        out["clip_frac"] = float(m["clip_frac"]) * share
        out["approx_kl"] = float(m["approx_kl"]) * share
        return loss, out

    return loss_fn


def _prm_metrics(prm_logp, ref_logp, batch: SampleBatch, rewards: Tensor, metrics: dict) -> None:
    q = sequence_q(prm_logp, ref_logp, batch.mask)
    correct = batch.outcome > 0.5
    metrics["prm/accuracy"] = float(((q > 0) == correct).float().mean())
    metrics["prm/q_mean"] = float(q.mean())
    metrics["reward/process_token_mean"] = float((rewards * batch.mask).sum() / batch.mask.sum())


def _batch_metrics(batch, logp, entropy, ref_logp, advantages, metrics: dict) -> None:
    mask = batch.mask
    valid = mask.bool()
    tokens = float(mask.sum())
    metrics["train/outcome_mean"] = float(batch.outcome.mean())
    metrics["train/samples"] = float(batch.size)
    metrics["train/response_len"] = tokens / batch.size
    metrics["train/entropy"] = float((entropy * mask).sum() / tokens)
    metrics["adv/mean"] = float(advantages[valid].mean())
    metrics["adv/std"] = float(advantages[valid].std())
    metrics["adv/max"] = float(advantages[valid].max())
    metrics["adv/min"] = float(advantages[valid].min())
    mismatch = logprob_mismatch(batch.rollout_logp, logp, mask)
    for key in ("abs_mean", "abs_p99", "abs_max", "signed_mean"):
        metrics[f"mismatch/rollout_vs_trainer_{key}"] = mismatch[key]
    if ref_logp is not None:
        metrics["train/kl_to_ref"] = float(aggregate_loss(kl_k3(logp, ref_logp), mask))
