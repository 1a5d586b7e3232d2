"""Deterministic, resumable order over a dataset: a seeded permutation per epoch.

The state is plain Python data (seed, size, epoch, position), saved with the trainer's
checkpoint; after ``load_state_dict`` the stream continues exactly where it stopped.
"""

import random


class PromptSampler:
    def __init__(self, size: int, seed: int, shuffle: bool = True) -> None:
        if size < 1:
            raise ValueError(f"cannot sample from an empty dataset (size={size})")
        self.size, self.seed, self.shuffle = size, seed, shuffle
        self.epoch, self.position = 0, 0
        self._order = self._permutation(0)

    def _permutation(self, epoch: int) -> list[int]:
        order = list(range(self.size))
        if self.shuffle:
            random.Random(f"prompts/{self.seed}/{epoch}").shuffle(order)
        return order

    def next_indices(self, n: int) -> list[int]:
        """The next ``n`` dataset indices, crossing into a freshly shuffled epoch as needed."""
        out: list[int] = []
        while len(out) < n:
            if self.position == self.size:
                self.epoch, self.position = self.epoch + 1, 0
                self._order = self._permutation(self.epoch)
            take = min(n - len(out), self.size - self.position)
            out += self._order[self.position : self.position + take]
            self.position += take
        return out

    def state_dict(self) -> dict:
        return {
            "seed": self.seed,
            "size": self.size,
            "shuffle": self.shuffle,
            "epoch": self.epoch,
            "position": self.position,
        }

    def load_state_dict(self, state: dict) -> None:
        """Resume; refuses state saved for another dataset size, seed or shuffle setting."""
        for key in ("seed", "size", "shuffle"):
            if state.get(key) != getattr(self, key):
                raise ValueError(
                    f"sampler state has {key}={state.get(key)!r} but this run has "
                    f"{key}={getattr(self, key)!r}: data or data.seed changed since the checkpoint"
                )
        if not 0 <= state["position"] <= self.size or state["epoch"] < 0:
            raise ValueError(f"sampler state out of range: {state}")
        self.epoch, self.position = state["epoch"], state["position"]
        self._order = self._permutation(self.epoch)
