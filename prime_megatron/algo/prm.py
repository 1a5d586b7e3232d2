"""Implicit PRM: process rewards from log-prob ratios, and the PRM's own training losses.

q_t = log pi_phi(y_t | x, y_<t) - log pi_ref(y_t | x, y_<t) per response token (docs/design.md 2.4),
Q = sum_t q_t per sample (so beta * Q is the implicit outcome reward log-ratio).
"""

import torch
import torch.nn.functional as F
from torch import Tensor

from prime_megatron.algo.ops import Groups, place_on_last_token

GRANULARITIES = ("token", "whole")
NORMS = ("batch_norm", "none")


def token_q(prm_logp: Tensor, ref_logp: Tensor, mask: Tensor) -> Tensor:
    """[B, T] log-probs under the PRM and the reference -> [B, T] q_t = log pi_prm/pi_ref on
    valid tokens, 0 elsewhere: the implicit process reward before beta and normalisation."""
    return (prm_logp - ref_logp) * mask


def sequence_q(prm_logp: Tensor, ref_logp: Tensor, mask: Tensor) -> Tensor:
    """[B, T] log-probs under the PRM and the reference -> [B] Q = sum of valid q_t."""
    return token_q(prm_logp, ref_logp, mask).sum(-1)


def implicit_process_rewards(
    prm_logp: Tensor,
    ref_logp: Tensor,
    mask: Tensor,
    beta: float = 0.05,
    granularity: str = "token",
    norm: str = "batch_norm",
) -> Tensor:
    """Per-token implicit process rewards r [B, T] (0 on padding; no gradient flows back).

    r_t = beta * q_t. ``granularity="whole"`` puts beta * Q on each row's last valid token.
    ``norm="batch_norm"`` (official code's ``prime_norm``) then divides r by
    max over the batch of |sum_{s>=t} r_s| + 1e-6, bounding every process return by 1;
    ``"none"`` keeps beta * q. The official verl recipe writes token rewards to positions
    [0, L-1) only (the last token's reward is dropped); here every valid token keeps its own.
    """
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity={granularity!r} is invalid: one of {GRANULARITIES}")
    if norm not in NORMS:
        raise ValueError(f"norm={norm!r} is invalid: one of {NORMS}")
    with torch.no_grad():
        rewards = beta * (prm_logp - ref_logp) * mask
        if granularity == "whole":
            rewards = place_on_last_token(rewards.sum(-1), mask)
        if norm == "batch_norm":
            reverse_cumsum = rewards.flip(-1).cumsum(-1).flip(-1)
            rewards = rewards / (reverse_cumsum.abs().max() + 1e-6)
    return rewards


def prm_ce_loss(
    prm_logp: Tensor, ref_logp: Tensor, mask: Tensor, outcome: Tensor, beta: float = 0.05
) -> Tensor:
    """Default PRM loss: BCE(sigmoid(beta * Q), r_o), mean over the B samples (scalar).

    ``outcome`` [B] in [0, 1] (fractions allowed, e.g. share of code tests passed).
    Gradient flows into ``prm_logp`` [B, T]. Computed from logits for stability; equals the
    official ``binary_cross_entropy(sigmoid(beta * Q), acc)``.
    """
    logit = beta * sequence_q(prm_logp, ref_logp, mask)
    return F.binary_cross_entropy_with_logits(logit, outcome.to(logit.dtype))


def log_ratio_l1(prm_logp: Tensor, ref_logp: Tensor, mask: Tensor) -> Tensor:
    """Mean over the B samples of sum_t |q_t| (scalar; gradient flows into ``prm_logp``).

    Added to the PRM loss with weight ``algo.prm_l1_coef`` it is a lasso on the per-token
    log-ratios: each token's q_t is pulled to 0 with force coef, against the CE loss's pull
    of beta * (sigmoid(beta * Q) - r_o). A token keeps a log-ratio only where the outcome
    pulls on it consistently harder than that, so the PRM cannot follow the policy's drift
    on tokens that do not decide the outcome (docs/implicit-prm.md).
    """
    return ((prm_logp - ref_logp).abs() * mask).sum(-1).mean()


def dpo_opposite_q(q: Tensor, outcome: Tensor, group: Tensor) -> Tensor:
    """[B] mean Q of the samples in the same group with the opposite outcome (0 if none).

    "Opposite" as in the official code: for r_o^i > 0 the group's samples with r_o^j < r_o^i,
    for r_o^i = 0 those with r_o^j > 0. Detached: the official DPO variant compares against
    the group's Q before the update.
    """
    q, outcome = q.detach(), outcome.to(q.dtype)
    groups = Groups.of(group)
    same_group = groups.index.unsqueeze(0) == groups.index.unsqueeze(1)
    worse = outcome.unsqueeze(0) < outcome.unsqueeze(1)  # [i, j]: r_o^j < r_o^i
    better = outcome.unsqueeze(0) > outcome.unsqueeze(1)
    opposite = same_group & torch.where((outcome > 0).unsqueeze(1), worse, better)
    count = opposite.sum(-1)
    total = (opposite.to(q.dtype) * q.unsqueeze(0)).sum(-1)
    return torch.where(count > 0, total / count.clamp(min=1), torch.zeros_like(total))


def prm_dpo_loss(
    prm_logp: Tensor,
    ref_logp: Tensor,
    mask: Tensor,
    outcome: Tensor,
    opposite_q: Tensor,
    beta: float = 0.05,
) -> Tensor:
    """DPO-style PRM loss: mean of -log sigmoid(s_i * beta * (Q_i - opposite_q_i)), s = +-1.

    s_i = +1 if r_o^i > 0 else -1; ``opposite_q`` [B] from ``dpo_opposite_q`` over the whole
    rollout batch (groups may be split over micro-batches). Scalar.
    """
    sign = torch.where(outcome > 0, 1.0, -1.0).to(prm_logp.dtype)
    margin = beta * (sequence_q(prm_logp, ref_logp, mask) - opposite_q)
    return -F.logsigmoid(sign * margin).mean()
