"""Offset-free measures of the implicit PRM on one batch: does Q rank the samples by outcome?

Q = sum_t (log pi_prm - log pi_ref) of a sample. Its level drifts by construction (on
samples of the reference, E[Q] = -KL(ref || prm) <= 0), so the sign of Q and the raw CE
loss say little about what the PRM has learned; rankings do not depend on that offset.
"""

from __future__ import annotations

from torch import Tensor

from prime_megatron.evidence.stats import auroc


def pairwise_accuracy(q: Tensor, outcome: Tensor, group: Tensor) -> float:
    """The official ``dpo_acc``: within each prompt group, over the sample pairs with
    different outcomes, the |outcome difference|-weighted share ranked the right way by Q
    (ties count 1/2; the official code counts a tie as "the second is better"); a group
    without such a pair counts 0.5. Mean over groups. ``q``, ``outcome``, ``group``: [B]."""
    per_group = []
    for g in group.unique():
        rows = group == g
        q_g, o_g = q[rows].double(), outcome[rows].double()
        d_out = o_g.unsqueeze(0) - o_g.unsqueeze(1)  # [i, j]: o_j - o_i
        d_q = q_g.unsqueeze(0) - q_g.unsqueeze(1)
        weight = d_out.abs().triu(diagonal=1)
        if float(weight.sum()) == 0:
            per_group.append(0.5)
            continue
        agree = (d_q.sign() * d_out.sign() > 0).double() + 0.5 * (d_q == 0).double()
        per_group.append(float((agree * weight).sum() / weight.sum()))
    return sum(per_group) / len(per_group)


def outcome_auroc(q: Tensor, outcome: Tensor) -> float | None:
    """AUROC of Q for telling correct (outcome > 0.5) from wrong samples over the batch;
    None when the batch holds only one kind."""
    return auroc(q.tolist(), (outcome > 0.5).int().tolist())


def sign_accuracy(q: Tensor, outcome: Tensor) -> float:
    """Share of samples with Q > 0 exactly when correct (the official ``dpo_acc_abs``)."""
    return float(((q > 0) == (outcome > 0.5)).float().mean())


def prm_batch_metrics(q: Tensor, outcome: Tensor, group: Tensor) -> dict[str, float]:
    """The ``prm/*`` ranking metrics of one batch (``outcome_auroc`` only when defined)."""
    metrics = {
        "prm/pairwise_acc": pairwise_accuracy(q, outcome, group),
        "prm/sign_acc": sign_accuracy(q, outcome),
        "prm/q_mean": float(q.mean()),
    }
    value = outcome_auroc(q, outcome)
    if value is not None:
        metrics["prm/outcome_auroc"] = value
    return metrics
