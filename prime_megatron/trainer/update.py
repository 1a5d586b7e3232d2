"""The learning half of a PRIME step: log-probs -> implicit rewards -> PRM update ->
advantages -> PPO policy update (docs/design.md 2.4-2.7), over one batch of filtered groups.

The math is ``prime_megatron.algo``; this module only feeds it tensors computed by the
Megatron models and turns its outputs into losses whose gradients add up correctly over
micro-batches and data-parallel ranks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from prime_megatron.algo import (
    aggregate_loss,
    dpo_opposite_q,
    implicit_process_rewards,
    kl_k3,
    log_ratio_l1,
    ppo_policy_loss,
    prime_advantages,
    prm_ce_loss,
    prm_dpo_loss,
    process_share,
    sequence_q,
    token_q,
)
from prime_megatron.algo.config import AlgoConfig
from prime_megatron.distributed.init import ParallelGroups
from prime_megatron.distributed.split import split_even
from prime_megatron.evidence.prm_metrics import prm_batch_metrics
from prime_megatron.passes.batch import SampleBatch
from prime_megatron.passes.micro import MicroBatching
from prime_megatron.passes.run import PassResult, run_pass
from prime_megatron.resharding.verify import logprob_mismatch
from prime_megatron.trainer.models import Models
from prime_megatron.trainer.phases import Phase, PhaseTimer


@dataclass
class UpdateSettings:
    algo: AlgoConfig
    use_prm: bool
    mini_batches: int
    micro_batching: MicroBatching | int  # an int: that many rows per micro-batch
    temperature: float
    vocab_size: int  # the real vocabulary: log-probs leave out Megatron's padding rows
    pad_id: int  # fills the columns a narrower batch gets when batches are joined
    prm_mini_batches: int = 1  # PRM optimizer steps per epoch over the step's batch


@dataclass
class LearnResult:
    metrics: dict[str, float]  # identical on every rank
    # [N, S-1] log pi_prm - log pi_ref of the PRM that scored the batch (0 off-mask), or None
    # without a PRM: the implicit process reward before beta and normalisation.
    token_q: Tensor | None
    policy_logp: Tensor  # [N, S-1] the sampling policy's log-probs (trainer side)
    sft_logp: Tensor | None  # [N, S-1] the policy's frozen start's, when it is loaded
    prm_ref_logp: Tensor | None = None  # [N, S-1] the PRM's reference's, with a PRM


class StepPasses:
    """Runs the step's model passes with its settings and counts each in the timer."""

    def __init__(
        self, models: Models, parallel: ParallelGroups, settings: UpdateSettings,
        timer: PhaseTimer, batch_rows: int,
    ) -> None:  # fmt: skip
        self.models, self.parallel, self.settings = models, parallel, settings
        self.timer, self.batch_rows = timer, batch_rows

    def run(self, model: str, batch: SampleBatch, **kwargs) -> PassResult:
        """``model`` (a ``Models`` field: "policy", "prm", "ref", "prm_ref") over ``batch``;
        ``kwargs`` as ``run_pass``'s."""
        settings = self.settings
        result = run_pass(
            getattr(self.models, model), self.parallel, batch, settings.micro_batching,
            settings.temperature, vocab_size=settings.vocab_size, **kwargs,
        )  # fmt: skip
        self.timer.count_pass(model, "loss_fn" in kwargs, batch.size / self.batch_rows)
        return result


def learn(
    models: Models,
    parallel: ParallelGroups,
    batch: SampleBatch,
    settings: UpdateSettings,
    timer: PhaseTimer,
    update_policy: bool = True,
    oracle_rewards: Tensor | None = None,
    prm_replay: Sequence[SampleBatch] = (),
    rollout_logp: bool = False,
) -> LearnResult:
    """One PRIME update on ``batch``; without ``update_policy`` (the PRM warm-up) the PRM's
    part only, the policy's log-probs computed for the metrics. ``oracle_rewards`` [N, S-1]
    replace the PRM's process rewards in the advantages (the PRM, if any, still trains and
    is measured). ``prm_replay``: earlier steps' batches, each with its ``ref_logp`` extra,
    that the PRM trains on along with this one (``algo.prm_replay_steps``).
    ``rollout_logp``: the sampler's log-probs (``batch.rollout_logp``) stand in for the
    sampling policy's wherever it is read before the update (``algo.sampling_logp``)."""
    algo = settings.algo
    passes = StepPasses(models, parallel, settings, timer, batch.size)
    with timer(Phase.LOGPROBS):
        sampled = None
        if needs_policy_forward(settings, rollout_logp):
            sampled = passes.run("policy", batch, with_entropy=True)
        sft_logp = passes.run("ref", batch).logp if models.ref is not None else None
        # A PRM with a start of its own (prm_model) is measured against that start.
        prm_sft_logp = sft_logp
        if models.prm_ref is not None:
            prm_sft_logp = passes.run("prm_ref", batch).logp
    sampling_logp = sampled.logp if sampled is not None else batch.rollout_logp
    metrics: dict[str, float] = {}
    process_rewards = q = prm_ref_logp = None
    if settings.use_prm:
        # The PRM's reference: its frozen SFT start, or the policy that sampled the batch
        # (paper Appendix B.1), which cancels the policy's own drift from the PRM's rewards.
        prm_ref_logp = sampling_logp if algo.prm_reference == "policy" else prm_sft_logp
        basis_logp = sampling_logp if algo.process_reward_basis == "policy" else prm_ref_logp
        process_rewards, q, prm_metrics = _process_rewards(
            passes, batch, prm_ref_logp, basis_logp, prm_replay
        )
        metrics.update(prm_metrics)
    if oracle_rewards is not None:
        process_rewards = oracle_rewards
    advantages, _ = prime_advantages(
        batch.outcome, process_rewards, batch.mask, batch.group, algo.gamma,
        algo.process_baseline, algo.whiten, algo.outcome_coef, algo.process_coef,
        algo.process_gamma,
    )  # fmt: skip
    if process_rewards is not None:
        mean = (process_rewards * batch.mask).sum() / batch.mask.sum()
        metrics["reward/process_token_mean"] = float(mean)
        metrics.update(_process_share(batch, process_rewards, algo))
    old_logp = None if settings.mini_batches == 1 else sampling_logp
    seen = _PolicySeen.sampling(sampled) if sampled is not None else None
    if update_policy:
        with timer(Phase.POLICY_UPDATE):
            update_metrics, updated = _policy_update(passes, batch, old_logp, advantages, sft_logp)
        metrics.update(update_metrics)
        seen = seen or updated
    elif seen is None:
        with timer(Phase.LOGPROBS):
            seen = _PolicySeen.sampling(passes.run("policy", batch, with_entropy=True))
    metrics.update(_batch_metrics(batch, seen, sft_logp, advantages))
    return LearnResult(metrics, q, seen.logp, sft_logp, prm_ref_logp)


def _process_share(
    batch: SampleBatch, process_rewards: Tensor, algo: AlgoConfig
) -> dict[str, float]:
    """``adv/process_share``: how far the PRM moves the advantages off outcome-only RLOO."""
    share = process_share(
        batch.outcome, process_rewards, batch.mask, batch.group, algo.gamma,
        algo.process_baseline, algo.outcome_coef, algo.process_coef, algo.process_gamma,
    )  # fmt: skip
    return {} if share is None else {"adv/process_share": share}


def needs_policy_forward(settings: UpdateSettings, rollout_logp: bool) -> bool:
    """Whether a policy forward must give the sampling policy's log-probs before the update:
    they are read there (``AlgoConfig.reads_sampling_logp``) and the engine's own do not
    stand in for them (``rollout_logp``)."""
    reads = settings.algo.reads_sampling_logp(settings.use_prm, settings.mini_batches)
    return reads and not rollout_logp


ROLLOUT_GAP = "mismatch/rollout_vs_trainer_abs_mean"  # the metric the tolerance is held to


def rollout_logp_agrees(metrics: dict[str, float], tolerance: float) -> bool:
    """Whether the engine's log-probs stayed within ``tolerance`` (mean nats per token) of
    the trainer's on this step's batch; a step that could not measure the gap agrees."""
    gap = metrics.get(ROLLOUT_GAP)
    return gap is None or gap <= tolerance


def _process_rewards(
    passes: StepPasses,
    batch: SampleBatch,
    ref_logp: Tensor,
    basis_logp: Tensor,
    replay: Sequence[SampleBatch],
) -> tuple[Tensor, Tensor, dict[str, float]]:
    """The PRM's phase: (process rewards [N, S-1], the PRM's token q, metrics). The PRM
    trains and is measured against ``ref_logp``; its rewards are taken against
    ``basis_logp`` (``algo.process_reward_basis``).

    With ``algo.prm_update`` "after" each sample's rewards come from the first-epoch
    forward of its own PRM mini-batch, before the PRM trains on it (the official single
    forward); with "before" a forward of the updated PRM scores the batch. The ``prm/*``
    ranking metrics always score each sample with a PRM that has not trained on it yet."""
    algo, timer = passes.settings.algo, passes.timer
    with timer(Phase.PRM_UPDATE):
        prm_logp, metrics = _prm_update(passes, batch, ref_logp, replay)
    metrics.update(prm_batch_metrics(sequence_q(prm_logp, ref_logp, batch.mask), batch.outcome,
                                     batch.group))  # fmt: skip
    if algo.prm_update == "before":
        with timer(Phase.LOGPROBS):
            prm_logp = passes.run("prm", batch).logp
    rewards = implicit_process_rewards(
        prm_logp, basis_logp, batch.mask, algo.beta, algo.reward_granularity,
        algo.process_reward_norm,
    )  # fmt: skip
    return rewards, token_q(prm_logp, ref_logp, batch.mask), metrics


def _prm_update(
    passes: StepPasses, batch: SampleBatch, ref_logp: Tensor, replay: Sequence[SampleBatch]
) -> tuple[Tensor, dict[str, float]]:
    """``algo.prm_epochs`` passes over ``prm_mini_batches`` mini-batches of whole groups of
    ``batch`` and the ``replay`` batches, one optimizer step each. Returns the first
    epoch's log-probs of ``batch`` [N, S-1] (each sample scored before the PRM trained on
    it) and the metrics (means over optimizer steps)."""
    settings = passes.settings
    algo, prm_opt = settings.algo, passes.models.prm_opt
    fresh = batch.with_extras(ref_logp=ref_logp)
    batch = SampleBatch.concat([fresh, *replay], settings.pad_id) if replay else fresh
    if algo.prm_loss == "dpo":
        # Pairs span a whole group, which micro-batches may split: compare against the
        # group's pre-update Q, computed for the full batch first (as the official code).
        logp = passes.run("prm", batch).logp
        opposite = dpo_opposite_q(sequence_q(logp, ref_logp, batch.mask), batch.outcome,
                                  batch.group)  # fmt: skip
        batch = batch.with_extras(opposite_q=opposite)
    fresh_logp = torch.zeros_like(batch.mask)
    totals = {"loss": 0.0, "abs_q": 0.0, "grad_norm": 0.0}
    steps = algo.prm_epochs * settings.prm_mini_batches
    for epoch in range(algo.prm_epochs):
        for rows, mini in group_mini_batches(batch, settings.prm_mini_batches):
            result = passes.run("prm", mini, loss_fn=_prm_loss_fn(algo, mini.size))
            if epoch == 0:
                fresh_logp[rows] = result.logp
            stats = prm_opt.step()
            totals["loss"] += result.metrics.get("prm_loss", 0.0) / steps
            totals["abs_q"] += result.metrics.get("prm_abs_q", 0.0) / steps
            totals["grad_norm"] += stats["grad_norm"] / steps
    fresh_logp = fresh_logp[: fresh.size, : fresh.mask.shape[1]]
    return fresh_logp, {f"prm/{key}": value for key, value in totals.items()}


def _prm_loss_fn(algo: AlgoConfig, mini_batch_size: int):
    def loss_fn(logp, _entropy, mb: SampleBatch):
        ref = mb.extras["ref_logp"]
        if algo.prm_loss == "ce":
            loss = prm_ce_loss(logp, ref, mb.mask, mb.outcome, algo.beta)
        else:
            opposite = mb.extras["opposite_q"]
            loss = prm_dpo_loss(logp, ref, mb.mask, mb.outcome, opposite, algo.beta)
        abs_q = log_ratio_l1(logp, ref, mb.mask)
        metrics = {"prm_loss": float(loss.detach()), "prm_abs_q": float(abs_q.detach())}
        if algo.prm_l1_coef > 0:
            loss = loss + algo.prm_l1_coef * abs_q
        # Means over the mini-batch, in micro-batch shares.
        share = mb.size / mini_batch_size
        return loss * share, {key: value * share for key, value in metrics.items()}

    return loss_fn


def group_mini_batches(batch: SampleBatch, parts: int) -> list[tuple[Tensor, SampleBatch]]:
    """``parts`` mini-batches of whole prompt groups (so each optimizer step sees complete
    groups), each with the row indices it was selected by."""
    out = []
    for prompts in split_even(int(batch.group.max()) + 1, parts):
        in_part = (batch.group >= prompts.start) & (batch.group < prompts.stop)
        rows = in_part.nonzero().squeeze(-1)
        out.append((rows, batch.select(rows)))
    return out


@dataclass
class _PolicySeen:
    """The policy's log-probs and entropy [N, S-1] as the trainer computed them this step,
    and which rows [N] (bool) it computed under the weights that sampled the batch."""

    logp: Tensor
    entropy: Tensor
    exact: Tensor

    @classmethod
    def sampling(cls, result: PassResult) -> _PolicySeen:
        """A forward of the sampling weights over every row."""
        return cls(result.logp, result.entropy, torch.ones(len(result.logp), dtype=torch.bool))


def _policy_update(
    passes: StepPasses,
    batch: SampleBatch,
    old_logp: Tensor | None,
    advantages: Tensor,
    ref_logp: Tensor | None,
) -> tuple[dict[str, float], _PolicySeen]:
    """PPO over ``mini_batches`` mini-batches, one optimizer step each; ``old_logp`` None
    (one mini-batch): the update's own forward gives them. Returns the metrics and what
    the update's forwards saw: the first mini-batch's rows under the sampling weights,
    later ones after the optimizer steps before them."""
    algo, settings = passes.settings.algo, passes.settings
    extras = {"advantages": advantages}
    if old_logp is not None:
        extras["old_logp"] = old_logp
    if ref_logp is not None and algo.kl_coef > 0:
        extras["ref_logp"] = ref_logp
    batch = batch.with_extras(**extras)
    logp, entropy = torch.zeros_like(batch.mask), torch.zeros_like(batch.mask)
    totals: dict[str, float] = {}
    minis = group_mini_batches(batch, settings.mini_batches)
    for rows, mini in minis:
        denom = float(mini.mask.sum()) if algo.loss_agg == "token-mean" else float(mini.size)
        result = passes.run("policy", mini, with_entropy=True, loss_fn=_ppo_loss_fn(algo, denom))
        logp[rows], entropy[rows] = result.logp, result.entropy
        stats = passes.models.policy_opt.step()
        step = {**result.metrics, "grad_norm": stats["grad_norm"], "lr": stats["lr"]}
        for key, value in step.items():
            totals[key] = totals.get(key, 0.0) + value / len(minis)
    metrics = {f"policy/{key}": value for key, value in totals.items()}
    exact = torch.zeros(batch.size, dtype=torch.bool)
    exact[minis[0][0]] = True
    return metrics, _PolicySeen(logp, entropy, exact)


def _ppo_loss_fn(algo: AlgoConfig, denom: float):
    def loss_fn(logp, entropy, mb: SampleBatch):
        extras = mb.extras
        # Without "old_logp" this forward is the first on the sampling weights (see
        # needs_policy_forward): its own detached log-probs are the old ones.
        old_logp = extras["old_logp"] if "old_logp" in extras else logp.detach()
        loss, parts = ppo_policy_loss(
            logp, old_logp, extras["advantages"], mb.mask, algo.clip_eps, algo.loss_agg,
            entropy=entropy if algo.entropy_coef > 0 else None, entropy_coef=algo.entropy_coef,
            ref_logp=extras.get("ref_logp"), kl_coef=algo.kl_coef, denominator=denom,
        )  # fmt: skip
        # pg_loss etc. are already shares of the global mean (same denominator): they add up.
        share = (
            float(mb.mask.sum()) / max(denom, 1.0)
            if algo.loss_agg == "token-mean"
            else mb.size / denom
        )
        return loss, {
            "loss": float(loss.detach()),
            "pg_loss": float(parts["pg_loss"]),
            "clip_frac": float(parts["clip_frac"]) * share,
            "approx_kl": float(parts["approx_kl"]) * share,
        }

    return loss_fn


def _batch_metrics(
    batch: SampleBatch, seen: _PolicySeen, ref_logp: Tensor | None, advantages: Tensor
) -> dict[str, float]:
    """The batch, its advantages and the policy as the trainer computed it; the gap to the
    sampler's log-probs on the rows computed under the sampling weights."""
    mask = batch.mask
    valid = mask.bool()
    tokens = float(mask.sum())
    metrics = {
        "train/outcome_mean": float(batch.outcome.mean()),
        "train/samples": float(batch.size),
        "train/response_len": tokens / batch.size,
        "train/entropy": float((seen.entropy * mask).sum() / tokens),
        "adv/mean": float(advantages[valid].mean()),
        "adv/std": float(advantages[valid].std()),
        "adv/max": float(advantages[valid].max()),
        "adv/min": float(advantages[valid].min()),
    }
    exact = seen.exact
    mismatch = logprob_mismatch(batch.rollout_logp[exact], seen.logp[exact], mask[exact])
    if mismatch["n_tokens"]:  # unmeasured: absent from the metrics
        for key in ("abs_mean", "abs_p99", "abs_max", "signed_mean"):
            metrics[f"mismatch/rollout_vs_trainer_{key}"] = mismatch[key]  # ROLLOUT_GAP
    if ref_logp is not None:
        metrics["train/kl_to_ref"] = float(aggregate_loss(kl_k3(seen.logp, ref_logp), mask))
    return metrics
