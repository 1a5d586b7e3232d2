"""The experience half of a PRIME step: prompts -> vLLM rollouts -> verifier outcomes ->
online filter -> carry-over buffer -> exactly ``prompts_per_step`` groups (docs/design.md 2.1-2.3).

Every rank runs this with the same inputs and gets the same groups: rollouts come back
all-gathered from the engine, and outcomes are scored once on rank 0 and broadcast (a
verifier sandbox per rank would multiply the cost and could disagree on timeouts).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from prime_megatron.algo import CarryOverBuffer, filter_groups
from prime_megatron.algo.config import AlgoConfig
from prime_megatron.data.dataset import PromptDataset
from prime_megatron.data.sampler import PromptSampler
from prime_megatron.distributed.rank import is_rank0
from prime_megatron.passes.batch import Group
from prime_megatron.rewards.manager import RewardInput, RewardManager

MAX_ROUNDS = 3  # rollout rounds per step when the filter leaves too few groups


class PromptSupplyError(ValueError):
    """No prompt of the dataset fits ``rollout.max_prompt_len``: a step can never be filled."""


@dataclass
class PromptEncoder:
    """Row -> prompt token ids (rendered with the data config's template)."""

    renderer: object
    tokenizer: object
    max_prompt_len: int

    def token_ids(self, messages) -> list[int]:
        """The rendered prompt's ids, however long (the template places special tokens)."""
        return self.tokenizer.encode(self.renderer(messages), add_special_tokens=False)

    def __call__(self, messages) -> list[int] | None:
        ids = self.token_ids(messages)
        return ids if len(ids) <= self.max_prompt_len else None


def score_on_rank0(
    manager: RewardManager | None, texts: list[str], rows: list
) -> tuple[list[float], dict[str, int]]:
    """Outcome rewards for ``texts`` (one per sample, ``rows`` its prompt row), on every rank."""
    payload: list = [None]
    if is_rank0():
        batch = manager.score(
            [
                RewardInput(t, r.ground_truth, r.data_source, r.ability)
                for t, r in zip(texts, rows, strict=True)
            ]
        )
        payload = [(batch.scores, batch.failures)]
    dist.broadcast_object_list(payload, src=0)
    return payload[0]


class GroupCollector:
    """Fills each step with filtered prompt groups; checkpoints its own position (the
    prompt sampler) and the carry-over buffer."""

    def __init__(
        self,
        dataset: PromptDataset,
        sampler: PromptSampler,
        encode: PromptEncoder,
        tokenizer,
        engine,
        rewards: RewardManager | None,
        algo: AlgoConfig,
        prompts_per_step: int,
        samples_per_prompt: int,
    ) -> None:
        self.dataset, self.sampler, self.encode = dataset, sampler, encode
        self.tokenizer, self.engine, self.rewards = tokenizer, engine, rewards
        self.algo, self.n_prompts, self.k = algo, prompts_per_step, samples_per_prompt
        self.buffer = CarryOverBuffer(algo.carryover_max_age)

    def state_dict(self) -> dict[str, Any]:
        """Plain python state (JSON-able) to continue collecting exactly where it stopped."""
        return {"sampler": self.sampler.state_dict(), "buffer": self.buffer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sampler.load_state_dict(state["sampler"])
        self.buffer.load_state_dict(state["buffer"])

    def collect(self, step: int, seed: int) -> tuple[list[Group], dict[str, float]]:
        """The step's training groups (fewer only if MAX_ROUNDS rounds could not fill it)."""
        totals: dict[str, float] = {}
        for round_ in range(MAX_ROUNDS):
            n = self.buffer.prompts_to_generate(self.n_prompts, step, self.algo.oversample_factor)
            if n == 0:
                break
            fresh, counts = self._rollout_round(n, step, seed * 1000 + round_)
            self.buffer.add([g.to_state() for g in fresh], step)
            for key, value in counts.items():
                totals[key] = totals.get(key, 0.0) + value
        taken = self.buffer.take(self.n_prompts, step)
        if taken is None:
            taken = self.buffer.take(len(self.buffer), step) or []
        return [Group(**g) for g in taken], self._metrics(totals, len(taken))

    def _metrics(self, totals: dict[str, float], n_groups: int) -> dict[str, float]:
        out = {
            "filter/buffer_size": float(len(self.buffer)),
            "filter/groups_trained": float(n_groups),
            "data/skipped_overlong": totals.get("skipped_overlong", 0.0),
        }
        if not totals:  # the buffer alone filled this step: no rollout, no rollout statistics
            return out
        samples = totals["samples"]
        out.update({
            "rollout/accuracy": totals["outcome_sum"] / samples,
            "rollout/prompts": totals["groups"],
            "rollout/response_len": totals["response_tokens"] / samples,
            "rollout/truncated_frac": totals["truncated"] / samples,
            "filter/keep_rate": totals["kept"] / totals["groups"],
            "filter/too_easy": totals.get("too_easy", 0.0),
            "filter/too_hard": totals.get("too_hard", 0.0),
        })  # fmt: skip
        out.update({f"verifier/{k}": v for k, v in totals.items() if k.startswith("fail_")})
        return out

    def _draw_prompts(self, n: int) -> tuple[list[int], list[list[int]], int]:
        """The next ``n`` prompts that fit (dataset indices, token ids) and how many over-long
        ones were skipped on the way. A full epoch of nothing but over-long prompts is an
        error: drawing on would never end (prepare_inputs only measures the first rows)."""
        indices, prompts, skipped_since_fit = [], [], set()
        skipped = 0
        while len(prompts) < n:
            for i in self.sampler.next_indices(n - len(prompts)):
                ids = self.encode(self.dataset[i].messages)
                if ids is None:  # over-long: skipped (deterministically)
                    skipped += 1
                    skipped_since_fit.add(i)
                    continue
                indices.append(i)
                prompts.append(ids)
                skipped_since_fit.clear()
            if len(skipped_since_fit) == len(self.dataset):
                raise PromptSupplyError(
                    f"rollout.max_prompt_len={self.encode.max_prompt_len}: none of the "
                    f"{len(self.dataset)} training prompts fits, so no step can be filled; "
                    "raise rollout.max_prompt_len or shorten the prompts"
                )
        return indices, prompts, skipped

    def _rollout_round(self, n: int, step: int, seed: int) -> tuple[list[Group], dict[str, float]]:
        indices, prompts, skipped = self._draw_prompts(n)
        rows = [self.dataset[i] for i in indices]
        out = self.engine.generate(prompts, self.k, seed=seed)
        texts = self.tokenizer.batch_decode(out.response_ids, skip_special_tokens=True)
        sample_rows = [rows[g] for g in out.group_index]
        scores, failures = score_on_rank0(self.rewards, texts, sample_rows)
        outcome = torch.tensor(scores, dtype=torch.float)
        keep, counts = filter_groups(
            outcome, torch.tensor(out.group_index), torch.tensor(out.truncated),
            self.algo.accuracy_range, self.algo.drop_truncated,
        )  # fmt: skip
        prompt_groups = []
        for p in range(len(prompts)):
            sl = slice(p * self.k, (p + 1) * self.k)
            if bool(keep[sl].all()):
                prompt_groups.append(Group(
                    prompt_ids=prompts[p], response_ids=out.response_ids[sl],
                    rollout_logprobs=out.response_logprobs[sl], truncated=out.truncated[sl],
                    outcome=scores[sl], row_index=indices[p], weight_version=out.weight_version,
                ))  # fmt: skip
        counts = {k: float(v) for k, v in counts.items()}
        counts.update({f"fail_{k}": float(v) for k, v in failures.items()})
        counts["skipped_overlong"] = float(skipped)
        counts["samples"] = float(len(scores))
        counts["outcome_sum"] = float(outcome.sum())
        counts["truncated"] = float(sum(out.truncated))
        counts["response_tokens"] = float(sum(len(r) for r in out.response_ids))
        return prompt_groups, counts
