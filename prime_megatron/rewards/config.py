"""Reward configuration: which verifier scores what, parallelism, timeouts, sandbox."""

from dataclasses import dataclass, field

from prime_megatron.config.errors import check

from .extract import EXTRACTORS
from .sandbox.config import SandboxConfig

VERIFIERS = ("math", "code")
START_METHODS = ("spawn", "forkserver", "fork")


@dataclass(frozen=True)
class RewardConfig:
    num_workers: int = 2  # math: processes; code: concurrent sandboxes
    parallel: bool = True  # False: score in this process, one sample at a time
    math_timeout_s: float = 10.0  # per sample
    # How a final answer is found in a response, tried in order.
    answer_extractors: list[str] = field(default_factory=lambda: ["boxed", "hash"])
    start_method: str = "spawn"  # safe with threads (torch, gloo) in the parent
    # Verifier per row: data_source first (exact match), then ability.
    verifier_by_data_source: dict[str, str] = field(default_factory=dict)
    verifier_by_ability: dict[str, str] = field(  # row ability -> verifier
        default_factory=lambda: {"math": "math", "code": "code"}
    )
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)

    def validate(self) -> None:
        check(self.num_workers >= 1, "rewards.num_workers", self.num_workers, ">= 1")
        check(self.math_timeout_s > 0, "rewards.math_timeout_s", self.math_timeout_s, "> 0")
        check(
            bool(self.answer_extractors) and set(self.answer_extractors) <= set(EXTRACTORS),
            "rewards.answer_extractors",
            self.answer_extractors,
            f"a non-empty list of {sorted(EXTRACTORS)}",
        )
        check(
            self.start_method in START_METHODS,
            "rewards.start_method",
            self.start_method,
            f"one of {START_METHODS}",
        )
        for name in ("verifier_by_data_source", "verifier_by_ability"):
            table = getattr(self, name)
            check(
                set(table.values()) <= set(VERIFIERS),
                f"rewards.{name}",
                table,
                f"values in {VERIFIERS}",
            )
        self.sandbox.validate()

    def verifier_for(self, data_source: str, ability: str) -> str:
        """``math`` or ``code`` for a row; ``KeyError`` naming both keys if neither maps."""
        if data_source in self.verifier_by_data_source:
            return self.verifier_by_data_source[data_source]
        if ability in self.verifier_by_ability:
            return self.verifier_by_ability[ability]
        raise KeyError(
            f"no verifier for data_source={data_source!r}, ability={ability!r}: add one to "
            f"rewards.verifier_by_data_source or rewards.verifier_by_ability"
        )
