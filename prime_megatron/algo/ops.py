"""Small masked / grouped tensor helpers shared by the algorithm modules.

Conventions: B samples, T response positions; ``mask`` [B, T] is 1 on valid response tokens
and 0 on padding (any float or bool dtype); ``group`` [B] holds an integer id per sample, equal
for the K samples of one prompt (ids need not be contiguous or sorted).
"""

from typing import NamedTuple

import torch
from torch import Tensor


def masked_mean(values: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of ``values`` where ``mask`` is set (over ``dim``, or everything); 0 if none is."""
    mask = mask.to(values.dtype)
    total = (values * mask).sum() if dim is None else (values * mask).sum(dim)
    count = mask.sum() if dim is None else mask.sum(dim)
    return total / count.clamp(min=1)


def last_valid_index(mask: Tensor) -> tuple[Tensor, Tensor]:
    """([B] position of each row's last valid token, [B] row-has-a-valid-token)."""
    positions = torch.arange(mask.shape[-1], device=mask.device)
    has_any = mask.bool().any(-1)
    # argmax returns the first maximum, so rows without valid tokens give 0 (see has_any).
    return (positions * mask.bool()).argmax(-1), has_any


def place_on_last_token(values: Tensor, mask: Tensor) -> Tensor:
    """[B] per-sample values -> [B, T] zeros with each value on its row's last valid token."""
    index, has_any = last_valid_index(mask)
    out = torch.zeros(mask.shape, dtype=values.dtype, device=values.device)
    return out.scatter_(1, index.unsqueeze(1), (values * has_any).unsqueeze(1))


class Groups(NamedTuple):
    """Dense group numbering: ``index`` [B] in [0, G), ``size`` [G] samples per group."""

    index: Tensor
    size: Tensor

    @classmethod
    def of(cls, group: Tensor) -> "Groups":
        _, index, size = torch.unique(group, return_inverse=True, return_counts=True)
        return cls(index, size)

    def sum(self, values: Tensor) -> Tensor:
        """[B] -> [G] sum per group."""
        out = torch.zeros(len(self.size), dtype=values.dtype, device=values.device)
        return out.index_add_(0, self.index, values)

    def broadcast_sum(self, values: Tensor) -> Tensor:
        """[B] -> [B]: the sum over each sample's own group."""
        return self.sum(values)[self.index]

    def require_leave_one_out(self) -> None:
        """Leave-one-out baselines need at least two samples in every group."""
        if bool((self.size < 2).any()):
            raise ValueError(
                f"every group needs >= 2 samples for a leave-one-out baseline, got group sizes "
                f"{self.size.tolist()}"
            )
