"""Online step credit (``run.step_credit_every``, synthetic task): does the implicit PRM find
the first wrong step, and does it still when the samples do not come from the policy?

Two measurements, both through ``evidence.credit.online_credit``:

* ``credit/*`` on the step's own training batch (samples of the current policy), against
  the policy's and the SFT model's confidence, the position prior and random directions;
* ``credit_sft_samples/*`` on a fixed probe set drawn once from the SFT model before RL.
  A PRM that moves with the policy scores the policy's samples by what the policy itself
  raised (a selection effect); on samples it did not shape, only learned credit counts.

``oracle_process_rewards`` (``algo.process_reward_source=oracle``) replaces the PRM's rewards
by the task's exact labels: what perfect dense credit would give PRIME's update.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
from torch import Tensor

from prime_megatron.algo import token_q
from prime_megatron.distributed.init import ParallelGroups
from prime_megatron.evidence.credit import first_wrong_token, online_credit, step_credit
from prime_megatron.evidence.samples import decode_sample, piece_table
from prime_megatron.passes.batch import Group, SampleBatch
from prime_megatron.passes.run import run_pass
from prime_megatron.trainer.models import Models

REPEATS = 20  # random-direction draws per measurement
PROBE_SEED = 7_777_777  # rollout seed of the probe set (apart from every training seed)


def sample_rows(
    prompt_groups: list[Group], batch: SampleBatch, token_q: Tensor | None, step: int
) -> list[dict]:
    """The batch's samples as dump rows (``evidence.samples`` reads them back)."""
    samples = [(group, k) for group in prompt_groups for k in range(len(group.response_ids))]
    return [
        {
            "step": step, "row_index": g.row_index,
            "prompt_ids": g.prompt_ids, "response_ids": g.response_ids[k],
            "outcome": g.outcome[k], "q": valid_tokens(token_q, batch.mask, i),
        }
        for i, (g, k) in enumerate(samples)
    ]  # fmt: skip


def valid_tokens(per_token: Tensor | None, mask: Tensor, row: int) -> list[float] | None:
    """Row ``row`` of a [N, S-1] per-token tensor at its response positions."""
    return None if per_token is None else per_token[row][mask[row].bool()].tolist()


def batch_credit(
    prompt_groups: list[Group],
    batch: SampleBatch,
    token_q: Tensor,
    logps: dict[str, Tensor | None],
    tokenizer,
    step: int,
) -> dict[str, float]:
    """``online_credit`` of one batch; ``logps`` name -> [N, S-1] log-probs of a model whose
    own confidence is a baseline (None entries are skipped)."""
    table = piece_table(tokenizer)
    rows = sample_rows(prompt_groups, batch, token_q, step)
    credits = [step_credit(decode_sample(row, table)) for row in rows]
    confidences = {
        name: [valid_tokens(logp, batch.mask, i) for i in range(batch.size)]
        for name, logp in logps.items()
        if logp is not None
    }
    return online_credit(credits, confidences, repeats=REPEATS, seed=step)


def oracle_process_rewards(
    prompt_groups: list[Group], batch: SampleBatch, tokenizer, penalty: float = 1.0
) -> Tensor:
    """[N, S-1] process rewards from the synthetic task's labels: ``-penalty`` on each
    sample's first wrong token (``evidence.credit.first_wrong_token``), 0 elsewhere."""
    table = piece_table(tokenizer)
    rewards = torch.zeros_like(batch.mask)
    for row, sample in enumerate(sample_rows(prompt_groups, batch, None, step=0)):
        wrong = first_wrong_token(decode_sample(sample, table))
        if wrong is not None:
            positions = batch.mask[row].nonzero().flatten()
            rewards[row, positions[wrong]] = -penalty
    return rewards


@dataclass
class SFTSampleProbe:
    """Samples drawn once from the SFT model (before any RL step), re-scored by the current
    PRM every time step credit is measured."""

    prompt_groups: list[Group]
    batch: SampleBatch

    @classmethod
    def draw(cls, engine, prompts: list[list[int]], k: int, pad_id: int) -> SFTSampleProbe:
        out = engine.generate(prompts, k, seed=PROBE_SEED)
        prompt_groups = [
            Group(prompts[p], out.response_ids[p * k : (p + 1) * k],
                  out.response_logprobs[p * k : (p + 1) * k], out.truncated[p * k : (p + 1) * k],
                  [0.0] * k, p, out.weight_version)
            for p in range(len(prompts))
        ]  # fmt: skip
        return cls(prompt_groups, SampleBatch.from_groups(prompt_groups, pad_id))

    def measure(
        self,
        models: Models,
        parallel: ParallelGroups,
        prm_reference: str,
        micro_batch_size: int,
        temperature: float,
        tokenizer,
        step: int,
        vocab_size: int,
    ) -> dict[str, float]:
        """``credit_sft_samples/*``: the PRM's rewards against its reference on the probe;
        the SFT model's confidence is the sampler's own log-probs."""
        args = (parallel, self.batch, micro_batch_size, temperature)
        prm_logp = run_pass(models.prm, *args, vocab_size=vocab_size).logp
        reference = models.prm_reference(prm_reference)
        ref_logp = run_pass(reference, *args, vocab_size=vocab_size).logp
        q = token_q(prm_logp, ref_logp, self.batch.mask)
        logps = {"sft": self.batch.rollout_logp}
        out = batch_credit(self.prompt_groups, self.batch, q, logps, tokenizer, step)
        return {k.replace("credit/", "credit_sft_samples/", 1): v for k, v in out.items()}


def probe_prompts(dataset, encode, n: int, seed: int) -> list[list[int]]:
    """``n`` encodable training prompts picked by ``seed`` (fixed for a run)."""
    order = list(range(len(dataset)))
    random.Random(f"credit-probe/{seed}").shuffle(order)
    prompts = []
    for i in order:
        ids = encode(dataset[i].messages)
        if ids is not None:
            prompts.append(ids)
        if len(prompts) == n:
            break
    return prompts
