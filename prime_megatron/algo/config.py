"""PRIME algorithm configuration (docs/design.md section 2).

Each field's comment says whose default it is: "paper" (Cui et al. 2025, arXiv 2502.01456),
"official" (the PRIME code: PRIME-RL/PRIME and its verl ``recipe/prime``), or "ours"
(docs/design.md's choice where the two differ or are silent).
"""

from dataclasses import dataclass

from prime_megatron.algo.advantages import BASELINES
from prime_megatron.algo.policy_loss import LOSS_AGGS
from prime_megatron.algo.prm import GRANULARITIES, NORMS
from prime_megatron.config.errors import check

PRM_LOSSES = ("ce", "dpo")
PRM_UPDATES = ("after", "before")
PRM_REFERENCES = ("sft", "policy")
PROCESS_REWARD_SOURCES = ("prm", "oracle")
PROCESS_REWARD_BASES = ("prm_reference", "policy")
SAMPLING_LOGPS = ("rollout", "trainer")


@dataclass(frozen=True)
class AlgoConfig:
    """Knobs of the PRIME math; ``validate()`` raises ``ConfigError`` naming the bad field."""

    # Implicit PRM reward r_t = beta * (log pi_phi - log pi_ref). paper + official: 0.05.
    beta: float = 0.05
    # "token": r_t on every token (paper + official); "whole": beta * Q on the last token.
    reward_granularity: str = "token"
    # "batch_norm": divide r by max |reverse cumsum| + 1e-6 (official); "none": beta * q.
    process_reward_norm: str = "batch_norm"
    # "ce": BCE(sigmoid(beta * Q), r_o) (paper + official); "dpo": pairwise vs opposite outcome.
    prm_loss: str = "ce"
    # Weight of an L1 penalty on the PRM's per-token log-ratios |q_t| (summed over a
    # response) added to its loss: keeps q sparse, on the tokens the outcome decides (ours;
    # 0 = off, as paper + official).
    prm_l1_coef: float = 0.0
    # "after": each sample's rewards from the first-epoch forward of its PRM mini-batch,
    # before the PRM trains on it (official "single forward": no scoring pass of its own);
    # "before": update the PRM first, then score with a forward of its own (verl recipe).
    prm_update: str = "after"
    # Where the sampling policy's log-probs come from when they are needed before the
    # update (a PRM with the policy as reference or basis; PPO's old log-probs with several
    # mini-batches): "rollout", the engine's own, returned with the samples (ours: no
    # policy forward); "trainer", a policy forward (official). The gap between the two is
    # measured every step (mismatch/rollout_vs_trainer_*); a step whose mean gap exceeds
    # sampling_logp_tolerance switches the rest of the run to "trainer", with a warning.
    sampling_logp: str = "rollout"
    # Largest mean |log-prob gap| per token (nats) at which the engine's log-probs stand in
    # for the trainer's (ours; fp32 measures ~1e-5, bf16 ~1e-2: resharding/verify.py).
    sampling_logp_tolerance: float = 0.05
    # Passes of the PRM over each step's batch (official: 1; its mini-batch count is
    # batch.prm_mini_batches_per_step).
    prm_epochs: int = 1
    # The PRM's reference pi_ref: "sft", the frozen SFT model (paper + official), or
    # "policy", the policy that sampled the batch (paper Appendix B.1: works as well; it
    # cancels the policy's own drift and needs no reference forward).
    prm_reference: str = "sft"
    # The PRM also trains on the filtered batches of the last N steps (ours; 0 = off, as
    # paper + official): more, and more varied, samples per PRM update without new
    # rollouts. Their reference log-probs are kept from their own step, exact because the
    # SFT reference is frozen (so it needs prm_reference=sft). Checkpointed per rank; a
    # resume at another layout starts it empty.
    prm_replay_steps: int = 0
    # RL steps at the start that train only the PRM: the policy stays the SFT model, so the
    # PRM's first rollouts come from a fixed policy (where, offline, it learned fastest;
    # docs/implicit-prm.md). They are steps of run.steps; their samples count as samples.
    prm_warmup_steps: int = 0
    # Process-stream RLOO baseline: "official" K/(K-1) r - sum_j m_j/(K-1) (official code);
    # "paper": Eq. 5, r - sum_{j != i} m_j/(K-1). m_j: sample j's mean token reward.
    process_baseline: str = "official"
    # Stream weights. official: 5 and 5; whitening cancels a common scale, so 1 and 1 here.
    outcome_coef: float = 1.0
    process_coef: float = 1.0  # weight of the process stream (see outcome_coef)
    # Discount of both streams' returns. paper + official: 1.
    gamma: float = 1.0
    # The process stream's own discount, when it differs (ours; None = gamma). 0 credits
    # each token with its own process reward only: with gamma 1, a reward at the first wrong
    # token also reaches every correct token before it (docs/implicit-prm.md).
    process_gamma: float | None = None
    # Where the process rewards come from: "prm", the implicit PRM (PRIME); "oracle", the
    # synthetic task's exact labels (-1 on the first token that leaves the reference
    # solution): a ceiling for what dense credit can add, not a method (ours).
    process_reward_source: str = "prm"
    # What the PRM's process rewards are measured against: "prm_reference", its own
    # reference (PRIME: r_t = beta log pi_prm/pi_ref); "policy", the policy that sampled the
    # batch (ours): r_t = beta log pi_prm/pi_old, the PRM's belief beyond the policy's own.
    # With the SFT reference that is PRIME's reward plus a per-token KL penalty of weight
    # beta, which cancels the reward a PRM that drifts with the policy hands the policy for
    # moving where it already moves (docs/implicit-prm.md). The PRM still trains on Q
    # against its reference.
    process_reward_basis: str = "prm_reference"
    # Whiten advantages over the batch's valid tokens (official).
    whiten: bool = True
    # PPO clip epsilon (paper + official: 0.2).
    clip_eps: float = 0.2
    # Entropy bonus and k3 KL-to-reference coefficients (paper: 0; verl recipe entropy 0.001).
    entropy_coef: float = 0.0
    kl_coef: float = 0.0  # k3 KL-to-reference weight (see entropy_coef)
    # Loss aggregation: "token-mean" (official verl masked mean) or "seq-mean".
    loss_agg: str = "token-mean"
    # Online prompt filter: keep prompts whose mean r_o lies in [low, high] (paper + official).
    filter_accuracy: bool = True
    accuracy_low: float = 0.2  # lowest kept mean outcome of a prompt's K samples
    accuracy_high: float = 0.8  # highest kept mean outcome (inclusive)
    # Drop prompts with a truncated sample (official option, off by default; ours: optional).
    drop_truncated: bool = False
    # Prompts rolled out per needed prompt (official verl recipe: 4.0).
    oversample_factor: float = 4.0
    # Steps a filtered-in surplus group may wait in the carry-over buffer (ours; 0 = drop
    # the surplus as the official code does).
    carryover_max_age: int = 1

    def reads_sampling_logp(self, use_prm: bool, mini_batches: int) -> bool:
        """Whether the sampling policy's log-probs are read before the policy update: by a
        PRM with the policy as its reference or reward basis, and as PPO's old log-probs
        when several mini-batches step the optimizer between forwards (with one, the
        update's own forward sees the sampling weights)."""
        by_prm = use_prm and "policy" in (self.prm_reference, self.process_reward_basis)
        return mini_batches > 1 or by_prm

    def validate(self) -> "AlgoConfig":
        """Check every field; returns self so ``AlgoConfig(...).validate()`` chains."""
        self._check_choices()
        self._check_ranges()
        return self

    def _check_choices(self) -> None:
        choices = {
            "reward_granularity": GRANULARITIES,
            "process_reward_norm": NORMS,
            "prm_loss": PRM_LOSSES,
            "prm_update": PRM_UPDATES,
            "prm_reference": PRM_REFERENCES,
            "process_baseline": BASELINES,
            "loss_agg": LOSS_AGGS,
            "process_reward_source": PROCESS_REWARD_SOURCES,
            "process_reward_basis": PROCESS_REWARD_BASES,
            "sampling_logp": SAMPLING_LOGPS,
        }
        for field, allowed in choices.items():
            value = getattr(self, field)
            check(value in allowed, f"algo.{field}", value, f"one of {allowed}")
        check(
            self.process_reward_basis == "prm_reference" or self.prm_reference == "sft",
            "algo.process_reward_basis", self.process_reward_basis,
            "'prm_reference' when algo.prm_reference=policy (the PRM's reference is the policy)",
        )  # fmt: skip
        check(
            self.prm_replay_steps == 0 or self.prm_reference == "sft",
            "algo.prm_replay_steps", self.prm_replay_steps,
            "0 when algo.prm_reference=policy (a past batch's policy reference is gone)",
        )  # fmt: skip

    def _check_ranges(self) -> None:
        check(self.beta > 0, "algo.beta", self.beta, "must be > 0")
        check(self.prm_epochs >= 1, "algo.prm_epochs", self.prm_epochs, "must be >= 1")
        check(self.sampling_logp_tolerance > 0, "algo.sampling_logp_tolerance",
              self.sampling_logp_tolerance, "must be > 0")  # fmt: skip
        check(self.prm_replay_steps >= 0, "algo.prm_replay_steps", self.prm_replay_steps,
              "must be >= 0")  # fmt: skip
        check(self.prm_warmup_steps >= 0, "algo.prm_warmup_steps", self.prm_warmup_steps,
              "must be >= 0")  # fmt: skip
        check(0 < self.gamma <= 1, "algo.gamma", self.gamma, "must be in (0, 1]")
        if self.process_gamma is not None:
            check(0 <= self.process_gamma <= 1, "algo.process_gamma", self.process_gamma,
                  "must be in [0, 1] (or null: gamma)")  # fmt: skip
        check(0 < self.clip_eps < 1, "algo.clip_eps", self.clip_eps, "must be in (0, 1)")
        for field in ("outcome_coef", "process_coef", "entropy_coef", "kl_coef", "prm_l1_coef"):
            value = getattr(self, field)
            check(value >= 0, f"algo.{field}", value, "must be >= 0")
        check(
            self.outcome_coef + self.process_coef > 0,
            "algo.outcome_coef",
            self.outcome_coef,
            "outcome_coef and process_coef cannot both be 0",
        )
        low, high = self.accuracy_low, self.accuracy_high
        check(0 <= low <= 1, "algo.accuracy_low", low, "must be in [0, 1]")
        check(low <= high <= 1, "algo.accuracy_high", high, f"must be in [accuracy_low={low}, 1]")
        check(
            self.oversample_factor >= 1,
            "algo.oversample_factor",
            self.oversample_factor,
            "must be >= 1",
        )
        check(
            self.carryover_max_age >= 0,
            "algo.carryover_max_age",
            self.carryover_max_age,
            "must be >= 0",
        )

    @property
    def accuracy_range(self) -> tuple[float, float] | None:
        """The filter's inclusive range, or None when accuracy filtering is off."""
        return (self.accuracy_low, self.accuracy_high) if self.filter_accuracy else None
