"""torchrun script: one PRIME update (PRM + PPO) on a fixed random batch at a TP/PP/DP
layout; prints the metrics and the post-update log-probs as one JSON line for comparison
across layouts.

args: HF_DIR TP PP [KEY=VALUE ...], keys (default): prm_update (after), prm_loss (ce),
      prm_mini_batches (1), prm_epochs (1), mini_batches (1), sampling (trainer: the
      sampling policy's log-probs from a policy forward where needed; forced: always that
      forward; rollout: the batch's rollout log-probs, set to the policy's exact ones),
      temperature (1.0), update_policy (1: 0 is the PRM
      warm-up), process_reward_basis (prm_reference), prm_reference (sft),
      process_reward_norm (batch_norm),
      perturb_policy (0: 1 moves the policy off the reference before the update),
      replay (0: 1 gives the PRM a second, narrower batch of 3 groups to replay)
"""

import json
import random
import sys
from pathlib import Path

VOCAB = 61  # the test checkpoints' (prime_megatron/models/hf_factory.py), padded to 128


def fixed_batch(vocab: int, k: int = 4, n_prompts: int = 6, seed: int = 0, longest: int = 9):
    from prime_megatron.passes.batch import Group, SampleBatch

    rng = random.Random(seed)
    groups = []
    for p in range(n_prompts):
        prompt = [rng.randrange(4, vocab) for _ in range(rng.randint(3, 6))]
        responses = [
            [rng.randrange(4, vocab) for _ in range(rng.randint(2, longest))] for _ in range(k)
        ]
        outcome = [float(rng.random() < 0.5) for _ in range(k)]
        outcome[0], outcome[1] = 1.0, 0.0  # every group mixed
        logps = [[-rng.random() for _ in r] for r in responses]
        groups.append(Group(prompt, responses, logps, [False] * k, outcome, p, 0))
    return SampleBatch.from_groups(groups, pad_id=0)


def main() -> None:

    import torch
    import torch.distributed as dist

    from prime_megatron.algo.config import AlgoConfig
    from prime_megatron.checkpoint.convert import load_megatron_model
    from prime_megatron.distributed.init import initialize_parallel, seed_all
    from prime_megatron.trainer import update
    from prime_megatron.trainer.optim import ShardedAdamW
    from prime_megatron.passes.run import run_pass
    from prime_megatron.trainer.models import Models
    from prime_megatron.trainer.phases import PhaseTimer
    from prime_megatron.trainer.update import UpdateSettings, learn

    ckpt, tp, pp = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    opts = {"prm_update": "after", "prm_loss": "ce", "prm_mini_batches": "1", "prm_epochs": "1",
            "mini_batches": "1", "sampling": "trainer", "temperature": "1.0",
            "update_policy": "1", "process_reward_basis": "prm_reference", "prm_reference": "sft",
            "process_reward_norm": "batch_norm", "perturb_policy": "0", "replay": "0"}  # fmt: skip
    opts.update(arg.split("=", 1) for arg in sys.argv[4:])
    if opts["sampling"] == "forced":  # the reference for the skipped forward
        update.needs_policy_forward = lambda _settings, _rollout: True
    parallel = initialize_parallel(tp, pp)
    seed_all(0, parallel)

    def load():
        return load_megatron_model(Path(ckpt), parallel)[0]

    policy, prm, ref = load(), load(), load().requires_grad_(False)

    def adam(model, clip):
        return ShardedAdamW(list(model.parameters()), parallel, lr=1e-3, grad_clip=clip)

    if opts["perturb_policy"] == "1":  # a policy that has left the SFT model
        torch.manual_seed(1)
        with torch.no_grad():
            for param in policy.parameters():
                param.add_(0.05 * torch.randn_like(param))
    models = Models(policy, adam(policy, 1.0), prm, adam(prm, 10.0), ref)
    batch = fixed_batch(vocab=VOCAB)
    algo = AlgoConfig(prm_update=opts["prm_update"], prm_loss=opts["prm_loss"], kl_coef=0.01,
                      entropy_coef=0.001, prm_epochs=int(opts["prm_epochs"]),
                      process_reward_basis=opts["process_reward_basis"],
                      prm_reference=opts["prm_reference"],
                      process_reward_norm=opts["process_reward_norm"])  # fmt: skip
    settings = UpdateSettings(
        algo, use_prm=True, mini_batches=int(opts["mini_batches"]), micro_batching=5,
        temperature=float(opts["temperature"]), vocab_size=VOCAB, pad_id=0,
        prm_mini_batches=int(opts["prm_mini_batches"]),
    )  # fmt: skip
    update_policy = opts["update_policy"] == "1"
    before = run_pass(models.policy, parallel, batch, 7, vocab_size=VOCAB).logp
    if opts["sampling"] == "rollout":  # an engine that agrees with the trainer exactly
        batch.rollout_logp = before.clone()
    ref_logp = run_pass(models.ref, parallel, batch, 7, vocab_size=VOCAB).logp
    replay = ()
    if opts["replay"] == "1":
        past = fixed_batch(vocab=VOCAB, n_prompts=3, seed=1, longest=4)
        past_ref = run_pass(models.ref, parallel, past, 7, vocab_size=VOCAB).logp
        replay = (past.with_extras(ref_logp=past_ref),)
    metrics = learn(models, parallel, batch, settings, PhaseTimer(), update_policy,
                    prm_replay=replay, rollout_logp=opts["sampling"] == "rollout").metrics  # fmt: skip
    after = run_pass(models.policy, parallel, batch, 7, vocab_size=VOCAB).logp
    prm_after = run_pass(models.prm, parallel, batch, 7, vocab_size=VOCAB).logp
    for v in metrics.values():
        assert v == v and abs(v) != float("inf"), metrics
    if dist.get_rank() == 0:
        out = {"metrics": metrics, "policy_logp_sum": float((after * batch.mask).sum()),
               "policy_logp_before_sum": float((before * batch.mask).sum()),
               "prm_logp_sum": float((prm_after * batch.mask).sum()),
               "ref_minus_policy_token_mean": float(((ref_logp - before) * batch.mask).sum()
                                                    / batch.mask.sum())}  # fmt: skip
        print("RESULT " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
    from prime_megatron.distributed.init import shutdown_distributed

    shutdown_distributed()
