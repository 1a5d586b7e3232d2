"""The learning half of a PRIME step: log-probs -> implicit rewards -> PRM update ->
advantages -> PPO policy update (docs/design.md 2.4-2.7), over one batch of filtered groups.

The math is ``prime_megatron.algo``; this module only feeds it tensors computed by the
Megatron models and turns its outputs into losses whose gradients add up correctly over
micro-batches and data-parallel ranks.
"""

from __future__ import annotations

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
from prime_megatron.evidence.prm_metrics import prm_batch_metrics
from prime_megatron.resharding.verify import logprob_mismatch
from prime_megatron.trainer.batch import SampleBatch, split_even
from prime_megatron.trainer.models import Models
from prime_megatron.trainer.passes import PassResult, run_pass
from prime_megatron.trainer.phases import Phase, PhaseTimer


@dataclass
class UpdateSettings:
    algo: AlgoConfig
    use_prm: bool
    mini_batches: int
    micro_batch_size: int
    temperature: float
    prm_mini_batches: int = 1  # PRM optimizer steps per epoch over the step's batch


@dataclass
class LearnResult:
    metrics: dict[str, float]  # identical on every rank
    # [N, S-1] log pi_prm - log pi_ref of the PRM that scored the batch (0 off-mask), or None
    # without a PRM: the implicit process reward before beta and normalisation.
    token_q: Tensor | None
    policy_logp: Tensor  # [N, S-1] the sampling policy's log-probs (trainer side)
    sft_logp: Tensor | None  # [N, S-1] the frozen reference model's, when it is loaded


def learn(
    models: Models, groups: ParallelGroups, batch: SampleBatch, s: UpdateSettings, timer: PhaseTimer
) -> LearnResult:
    """One PRIME update on ``batch``."""
    a, mbs, temp = s.algo, s.micro_batch_size, s.temperature
    metrics: dict[str, float] = {}
    with timer(Phase.LOGPROBS):
        old = None
        if separate_policy_forward(s):
            old = run_pass(models.policy, groups, batch, mbs, temp, with_entropy=True)
        sft_logp = None
        if models.ref is not None:
            sft_logp = run_pass(models.ref, groups, batch, mbs, temp).logp
    # The PRM's reference: the frozen SFT model, or the policy that sampled the batch (paper
    # Appendix B.1), which cancels the policy's own drift from the PRM's rewards.
    prm_ref_logp = old.logp if a.prm_reference == "policy" and old is not None else sft_logp
    process_rewards = token_q = None
    if s.use_prm:
        prm_logp, prm_metrics = _prm_phase(models, groups, batch, prm_ref_logp, s, timer)
        metrics.update(prm_metrics)
        token_q = (prm_logp - prm_ref_logp) * batch.mask
        process_rewards = implicit_process_rewards(
            prm_logp, prm_ref_logp, batch.mask, a.beta, a.reward_granularity,
            a.process_reward_norm,
        )  # fmt: skip
        metrics["reward/process_token_mean"] = float(
            (process_rewards * batch.mask).sum() / batch.mask.sum()
        )
    advantages, _ = prime_advantages(
        batch.outcome, process_rewards, batch.mask, batch.group, a.gamma,
        a.process_baseline, a.whiten, a.outcome_coef, a.process_coef,
    )  # fmt: skip
    with timer(Phase.POLICY_UPDATE):
        update_metrics, sampled = _policy_update(models, groups, batch, old, advantages,
                                                 sft_logp, s)  # fmt: skip
    metrics.update(update_metrics)
    metrics.update(_batch_metrics(batch, sampled.logp, sampled.entropy, sft_logp, advantages))
    return LearnResult(metrics, token_q, sampled.logp, sft_logp)


def separate_policy_forward(s: UpdateSettings) -> bool:
    """Whether the sampling policy's log-probs need a forward of their own before the update.

    With one mini-batch the update's forward sees the weights that sampled the batch, so its
    detached log-probs are the "old" ones (ratio 1, same gradient). Several mini-batches
    step the optimizer between forwards, and a PRM with the policy as its reference reads
    them before the update runs."""
    return s.mini_batches > 1 or (s.use_prm and s.algo.prm_reference == "policy")


def _prm_phase(
    models: Models, groups, batch, ref_logp, s: UpdateSettings, timer: PhaseTimer
) -> tuple[Tensor, dict[str, float]]:
    """PRM log-probs used for the rewards, and the PRM update, in the configured order;
    with the update's and the ranking metrics.

    The ``prm/*`` ranking metrics score every sample with a PRM that has not trained on it
    yet: the PRM before this step's update ("after"), or, with "before", the first epoch's
    forward of the sample's mini-batch (earlier mini-batches' updates only)."""
    after = s.algo.prm_update == "after"
    single_forward = s.prm_mini_batches == 1 and s.algo.prm_epochs == 1
    if after and not single_forward:
        with timer(Phase.LOGPROBS):
            logp = run_pass(models.prm, groups, batch, s.micro_batch_size, s.temperature).logp
    with timer(Phase.PRM_UPDATE):
        fresh_logp, metrics = _prm_update(models, groups, batch, ref_logp, s)
    if after and single_forward:
        logp = fresh_logp  # its own forward saw the weights before the update
    unseen = logp if after else fresh_logp
    metrics.update(prm_batch_metrics(sequence_q(unseen, ref_logp, batch.mask), batch.outcome,
                                     batch.group))  # fmt: skip
    if not after:
        with timer(Phase.LOGPROBS):
            logp = run_pass(models.prm, groups, batch, s.micro_batch_size, s.temperature).logp
    return logp, metrics


def _prm_update(models, groups, batch, ref_logp, s: UpdateSettings) -> tuple[Tensor, dict]:
    """``algo.prm_epochs`` passes over ``s.prm_mini_batches`` mini-batches of whole groups,
    one optimizer step each. Returns the first epoch's log-probs [N, S-1] (each sample
    scored before the PRM trained on it) and the metrics (means over optimizer steps)."""
    a = s.algo
    batch = batch.with_extras(ref_logp=ref_logp)
    if a.prm_loss == "dpo":
        # Pairs span a whole group, which micro-batches may split: compare against the
        # group's pre-update Q, computed for the full batch first (as the official code).
        logp = run_pass(models.prm, groups, batch, s.micro_batch_size, s.temperature).logp
        opposite = dpo_opposite_q(sequence_q(logp, ref_logp, batch.mask), batch.outcome,
                                  batch.group)  # fmt: skip
        batch = batch.with_extras(opposite_q=opposite)
    fresh_logp = torch.zeros_like(batch.mask)
    totals: dict[str, float] = {}
    steps = a.prm_epochs * s.prm_mini_batches
    for epoch in range(a.prm_epochs):
        for rows, mini in group_mini_batches(batch, s.prm_mini_batches):
            result = run_pass(models.prm, groups, mini, s.micro_batch_size, s.temperature,
                              loss_fn=_prm_loss_fn(a, mini.size))  # fmt: skip
            if epoch == 0:
                fresh_logp[rows] = result.logp
            stats = models.prm_opt.step()
            step_metrics = {"loss": result.metrics.get("prm_loss", 0.0), **stats}
            for k in ("loss", "grad_norm"):
                totals[k] = totals.get(k, 0.0) + step_metrics[k] / steps
    return fresh_logp, {f"prm/{k}": v for k, v in totals.items()}


def _prm_loss_fn(a: AlgoConfig, n: int):
    def loss_fn(logp, _ent, mb: SampleBatch):
        ref = mb.extras["ref_logp"]
        if a.prm_loss == "ce":
            loss = prm_ce_loss(logp, ref, mb.mask, mb.outcome, a.beta)
        else:
            loss = prm_dpo_loss(logp, ref, mb.mask, mb.outcome, mb.extras["opposite_q"], a.beta)
        loss = loss * (mb.size / n)  # a mean over the mini-batch, in micro-batch shares
        return loss, {"prm_loss": float(loss.detach())}

    return loss_fn


def group_mini_batches(batch: SampleBatch, parts: int) -> list[tuple[Tensor, SampleBatch]]:
    """``parts`` mini-batches of whole prompt groups (so each optimizer step sees complete
    groups), each with the row indices it was selected by."""
    out = []
    for gs in split_even(int(batch.group.max()) + 1, parts):
        rows = ((batch.group >= gs.start) & (batch.group < gs.stop)).nonzero().squeeze(-1)
        out.append((rows, batch.select(rows)))
    return out


def _policy_update(
    models: Models,
    groups,
    batch,
    old: PassResult | None,
    advantages,
    ref_logp,
    s: UpdateSettings,
) -> tuple[dict[str, float], PassResult]:
    """PPO over ``s.mini_batches`` mini-batches, one optimizer step each. Returns the
    metrics and the sampling policy's log-probs and entropy: ``old``, or without it (one
    mini-batch) those of the update's own forward, which also computes the entropy."""
    a = s.algo
    extras = {"advantages": advantages}
    if old is not None:
        extras["old_logp"] = old.logp
    if ref_logp is not None and a.kl_coef > 0:
        extras["ref_logp"] = ref_logp
    batch = batch.with_extras(**extras)
    totals: dict[str, float] = {}
    minis = group_mini_batches(batch, s.mini_batches)
    for _, mini in minis:
        denom = float(mini.mask.sum()) if a.loss_agg == "token-mean" else float(mini.size)
        result = run_pass(
            models.policy, groups, mini, s.micro_batch_size, s.temperature,
            with_entropy=old is None or a.entropy_coef > 0, loss_fn=_ppo_loss_fn(a, denom),
        )  # fmt: skip
        stats = models.policy_opt.step()
        for k, v in {**result.metrics, "grad_norm": stats["grad_norm"], "lr": stats["lr"]}.items():
            totals[k] = totals.get(k, 0.0) + v / len(minis)
    return {f"policy/{k}": v for k, v in totals.items()}, old if old is not None else result


def _ppo_loss_fn(a: AlgoConfig, denom: float):
    def loss_fn(logp, ent, mb: SampleBatch):
        x = mb.extras
        # Without "old_logp" this forward is the first on the sampling weights (see
        # separate_policy_forward): its own detached log-probs are the old ones.
        old_logp = x["old_logp"] if "old_logp" in x else logp.detach()
        loss, m = ppo_policy_loss(
            logp, old_logp, x["advantages"], mb.mask, a.clip_eps, a.loss_agg,
            entropy=ent if a.entropy_coef > 0 else None, entropy_coef=a.entropy_coef,
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


def _batch_metrics(batch, logp, entropy, ref_logp, advantages) -> dict[str, float]:
    mask = batch.mask
    valid = mask.bool()
    tokens = float(mask.sum())
    metrics = {
        "train/outcome_mean": float(batch.outcome.mean()),
        "train/samples": float(batch.size),
        "train/response_len": tokens / batch.size,
        "train/entropy": float((entropy * mask).sum() / tokens),
        "adv/mean": float(advantages[valid].mean()),
        "adv/std": float(advantages[valid].std()),
        "adv/max": float(advantages[valid].max()),
        "adv/min": float(advantages[valid].min()),
    }
    mismatch = logprob_mismatch(batch.rollout_logp, logp, mask)
    for key in ("abs_mean", "abs_p99", "abs_max", "signed_mean"):
        metrics[f"mismatch/rollout_vs_trainer_{key}"] = mismatch[key]
    if ref_logp is not None:
        metrics["train/kl_to_ref"] = float(aggregate_loss(kl_k3(logp, ref_logp), mask))
    return metrics
