"""RLOO advantages on the outcome and process streams, returns, whitening (docs/design.md 2.6).

Shapes: outcome [B]; rewards, mask [B, T]; group [B] (K samples of a prompt share an id).
"""

import torch
from torch import Tensor

from prime_megatron.algo.ops import Groups, masked_mean, place_on_last_token

BASELINES = ("official", "paper")


def outcome_rloo(outcome: Tensor, group: Tensor) -> Tensor:
    """[B] leave-one-out outcome advantages A_o^i = r_o^i - mean_{j != i, same group} r_o^j.

    Equals the official K/(K-1) r_o^i - sum_j r_o^j / (K-1); sums to 0 over each group.
    """
    groups = Groups.of(group)
    groups.require_leave_one_out()
    k = groups.size[groups.index].to(outcome.dtype)
    return outcome - (groups.broadcast_sum(outcome) - outcome) / (k - 1)


def process_rloo(
    rewards: Tensor, mask: Tensor, group: Tensor, baseline: str = "official"
) -> Tensor:
    """[B, T] process rewards with the leave-one-out baseline subtracted per token (0 on padding).

    With m_j = mean over the valid tokens of r^j:
    ``"official"`` (default, the official code's ``masked_rloo``):
        r_hat_t^i = K/(K-1) * r_t^i - (sum_j m_j) / (K-1)
                  = r_t^i - (sum_{j != i} m_j) / (K-1) + (r_t^i - m_i) / (K-1).
    ``"paper"`` (Eq. 5, its baseline built from "the averaged implicit process rewards"):
        r_hat_t^i = r_t^i - (sum_{j != i} m_j) / (K-1).
    Both vanish when every sample of a group has the same constant per-token reward.
    """
    if baseline not in BASELINES:
        raise ValueError(f"baseline={baseline!r} is invalid: one of {BASELINES}")
    groups = Groups.of(group)
    groups.require_leave_one_out()
    mask = mask.to(rewards.dtype)
    rewards = rewards * mask
    k = groups.size[groups.index].to(rewards.dtype).unsqueeze(1)
    means = masked_mean(rewards, mask, dim=-1)
    if baseline == "official":
        shifted = k / (k - 1) * rewards - groups.broadcast_sum(means).unsqueeze(1) / (k - 1)
    else:
        others = (groups.broadcast_sum(means) - means).unsqueeze(1)
        shifted = rewards - others / (k - 1)
    return shifted * mask


def discounted_returns(rewards: Tensor, mask: Tensor, gamma: float = 1.0) -> Tensor:
    """[B, T] G_t = sum_{s >= t, valid} gamma^n(t, s) r_s, n(t, s) = #valid tokens in (t, s].

    Padding positions carry the return through unchanged (so holes in the mask are skipped,
    not discounted) and are 0 in the output. gamma = 1 gives the reverse cumulative sum,
    gamma = 0 the rewards themselves.
    """
    mask = mask.to(rewards.dtype)
    if gamma == 1.0:
        return (rewards * mask).flip(-1).cumsum(-1).flip(-1) * mask
    out = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    for t in range(rewards.shape[1] - 1, -1, -1):
        m = mask[:, t]
        running = m * (rewards[:, t] + gamma * running) + (1 - m) * running
        out[:, t] = running * m
    return out


def masked_whiten(values: Tensor, mask: Tensor, eps: float = 1e-8) -> Tensor:
    """(values - mean) / sqrt(var + eps) over the valid tokens of the batch; 0 on padding.

    Unbiased variance as in verl's ``masked_whiten`` (the official code path).
    """
    mask = mask.to(values.dtype)
    mean = masked_mean(values, mask)
    centred = (values - mean) * mask
    n = mask.sum()
    var = (centred**2).sum() / (n - 1).clamp(min=1)
    return centred * torch.rsqrt(var + eps)


def prime_advantages(
    outcome: Tensor,
    process_rewards: Tensor | None,
    mask: Tensor,
    group: Tensor,
    gamma: float = 1.0,
    baseline: str = "official",
    whiten: bool = True,
    outcome_coef: float = 1.0,
    process_coef: float = 1.0,
    process_gamma: float | None = None,
) -> tuple[Tensor, Tensor]:
    """PRIME advantages: RLOO on both streams, returns of their sum, optional whitening.

    The outcome stream puts ``outcome_rloo`` on each sample's last valid token; the process
    stream is ``process_rloo(process_rewards)`` (None: outcome-only RLOO). Returns
    (advantages [B, T], returns [B, T]); both 0 on padding. The official code weights the
    streams 5 and 5 before whitening, which whitening cancels; the coefs matter without it.
    ``process_gamma`` discounts the process stream (None: ``gamma``, as the official code);
    0 credits each token with its own process reward only, not the rewards after it.
    """
    mask = mask.to(outcome.dtype)
    returns = discounted_returns(_outcome_stream(outcome, mask, group, outcome_coef), mask, gamma)
    if process_rewards is not None:
        process = process_coef * process_rloo(process_rewards, mask, group, baseline)
        returns = returns + discounted_returns(process, mask, _or(process_gamma, gamma))
    advantages = masked_whiten(returns, mask) if whiten else returns
    return advantages, returns


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def _outcome_stream(outcome: Tensor, mask: Tensor, group: Tensor, coef: float) -> Tensor:
    """[B, T] the outcome stream's token rewards: RLOO outcome on each last valid token."""
    return coef * place_on_last_token(outcome_rloo(outcome, group), mask)


def process_share(
    outcome: Tensor,
    process_rewards: Tensor,
    mask: Tensor,
    group: Tensor,
    gamma: float = 1.0,
    baseline: str = "official",
    outcome_coef: float = 1.0,
    process_coef: float = 1.0,
    process_gamma: float | None = None,
) -> float | None:
    """How much the PRM moves the advantages: std of the process stream's returns over the
    std of the outcome stream's, over the valid tokens, before whitening.

    Each stream's returns are its own (``prime_advantages`` adds them). Near 0, PRIME's
    update is outcome-only RLOO's whatever the PRM knows. None when the outcome stream has
    no spread (every group's outcomes equal).
    """
    mask = mask.to(outcome.dtype)
    outcome_rewards = _outcome_stream(outcome, mask, group, outcome_coef)
    process_rewards = process_coef * process_rloo(process_rewards, mask, group, baseline)
    outcome_returns = discounted_returns(outcome_rewards, mask, gamma)
    process_returns = discounted_returns(process_rewards, mask, _or(process_gamma, gamma))
    valid = mask.bool()
    spread = outcome_returns[valid].std()
    process = process_returns[valid].std()
    return float(process / spread) if spread > 0 else None
