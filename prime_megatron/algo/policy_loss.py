"""PPO-clip policy loss with optional entropy bonus and KL-to-reference (docs/design.md 2.7).

Shapes: logp, old_logp, ref_logp, advantages, entropy, mask all [B, T].
"""

import torch
from torch import Tensor

from prime_megatron.algo.ops import masked_mean

LOSS_AGGS = ("token-mean", "seq-mean")
# Log-ratios are clamped before exp() so one wild token cannot overflow to inf (as verl does).
MAX_LOG_RATIO = 20.0


def aggregate_loss(
    values: Tensor, mask: Tensor, mode: str = "token-mean", denominator: float | None = None
) -> Tensor:
    """Reduce per-token ``values`` [B, T] to a scalar over valid tokens.

    ``token-mean``: sum over valid tokens / number of valid tokens (every token weighs the same).
    ``seq-mean``: mean over sequences of each sequence's token mean (every sample weighs the
    same; rows without valid tokens are skipped). ``denominator`` overrides the count (tokens,
    resp. sequences) so micro-batches and data-parallel ranks can share one global normaliser.
    """
    if mode not in LOSS_AGGS:
        raise ValueError(f"loss_agg={mode!r} is invalid: one of {LOSS_AGGS}")
    mask = mask.to(values.dtype)
    if mode == "token-mean":
        total, count = (values * mask).sum(), mask.sum()
    else:
        has_tokens = mask.sum(-1) > 0
        total, count = masked_mean(values, mask, dim=-1).sum(), has_tokens.sum()
    return total / (denominator if denominator is not None else count.clamp(min=1))


def kl_k3(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """Per-token k3 estimator of KL(pi_theta || pi_ref) on samples from pi_theta.

    k3 = exp(ref - logp) - (ref - logp) - 1 (Schulman's "approximating KL"): unbiased, >= 0
    per token, lower variance than log(pi/pi_ref); verl's ``low_var_kl``, incl. its clamps.
    """
    log_ratio = (ref_logp - logp).clamp(-MAX_LOG_RATIO, MAX_LOG_RATIO)
    return (log_ratio.exp() - log_ratio - 1).clamp(max=10.0)


def ppo_policy_loss(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    clip_eps: float = 0.2,
    loss_agg: str = "token-mean",
    entropy: Tensor | None = None,
    entropy_coef: float = 0.0,
    ref_logp: Tensor | None = None,
    kl_coef: float = 0.0,
    denominator: float | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """PPO-clip loss (to minimise) and detached metrics.

    loss = agg(max(-A * ratio, -A * clip(ratio, 1 - eps, 1 + eps)))
           - entropy_coef * agg(entropy) + kl_coef * agg(k3(logp, ref_logp)),
    ratio = exp(logp - old_logp). ``entropy`` / ``ref_logp`` are needed only when their coef
    is non-zero. Metrics: pg_loss, clip_frac, approx_kl (old vs new), and entropy / kl when
    given.
    """
    log_ratio = (logp - old_logp).clamp(-MAX_LOG_RATIO, MAX_LOG_RATIO)
    ratio = log_ratio.exp()
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps)
    pg_loss = aggregate_loss(torch.maximum(unclipped, clipped), mask, loss_agg, denominator)
    loss = pg_loss
    metrics = {
        "pg_loss": pg_loss.detach(),
        "clip_frac": masked_mean((clipped > unclipped).to(logp.dtype), mask).detach(),
        "approx_kl": masked_mean(-log_ratio, mask).detach(),
    }
    if entropy is not None:
        ent = aggregate_loss(entropy, mask, loss_agg, denominator)
        loss = loss - entropy_coef * ent
        metrics["entropy"] = ent.detach()
    elif entropy_coef != 0.0:
        raise ValueError("entropy_coef != 0 needs the per-token entropy")
    if ref_logp is not None:
        kl = aggregate_loss(kl_k3(logp, ref_logp), mask, loss_agg, denominator)
        loss = loss + kl_coef * kl
        metrics["kl"] = kl.detach()
    elif kl_coef != 0.0:
        raise ValueError("kl_coef != 0 needs the reference log-probs")
    return loss, metrics
