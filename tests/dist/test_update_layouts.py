"""One PRIME update gives the same numbers at every parallel layout (and changes weights)."""

import json

import pytest

from prime_megatron.algo.config import AlgoConfig
from tests.dist.conftest import SCRIPTS
from tests.torchrun import run_torchrun

# Numbers that must agree across layouts (same data, same weights, same math). Not the
# PRM's rank metrics (sign, pairwise): its first mini-batch is scored by the PRM before
# any update, equal to its reference, so those samples' Q are 0 up to float noise whose
# signs differ between layouts.
COMPARED = ["prm/loss", "prm/grad_norm", "prm/q_mean", "prm/abs_q", "policy/pg_loss",
            "policy/grad_norm", "adv/std", "adv/process_share", "train/kl_to_ref",
            "train/entropy"]  # fmt: skip


# The PRM's own schedule (3 mini-batches of 2 groups, 2 epochs) is part of what must agree.
SCHEDULE = (3, 2)


def _run(ckpt, nproc, tp, pp, schedule=SCHEDULE, mini_batches=2, **options) -> dict:
    """``options``: the script's other keys (prm_update, prm_loss, separate_forward, ...)."""
    options = {"prm_mini_batches": schedule[0], "prm_epochs": schedule[1],
               "mini_batches": mini_batches, **options}  # fmt: skip
    args = [str(ckpt), str(tp), str(pp), *(f"{k}={int(v) if isinstance(v, bool) else v}"
                                           for k, v in options.items())]  # fmt: skip
    out = run_torchrun(SCRIPTS / "update_step.py", nproc, *args)
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


@pytest.fixture(scope="module")
def reference(megatron_ckpts):
    return _run(megatron_ckpts["qwen2"], 1, 1, 1)


@pytest.mark.parametrize("nproc, tp, pp", [(2, 2, 1), (2, 1, 2), (2, 1, 1), (4, 2, 2)])
def test_update_matches_single_process(reference, megatron_ckpts, nproc, tp, pp):
    got = _run(megatron_ckpts["qwen2"], nproc, tp, pp)
    for key in COMPARED:
        assert got["metrics"][key] == pytest.approx(
            reference["metrics"][key], rel=1e-4, abs=1e-6
        ), key
    assert got["policy_logp_sum"] == pytest.approx(reference["policy_logp_sum"], rel=1e-5)
    assert got["prm_logp_sum"] == pytest.approx(reference["prm_logp_sum"], rel=1e-5)


def test_prm_update_order_decides_which_prm_scores(reference, megatron_ckpts):
    # "after" (single forward): each sample's rewards come from its own mini-batch's
    # first-epoch forward. With one PRM mini-batch that is the PRM before any update,
    # which starts equal to its reference: the first step's process rewards are zero.
    ckpt = megatron_ckpts["qwen2"]
    one_step = _run(ckpt, 1, 1, 1, schedule=(1, 1))
    assert one_step["metrics"]["prm/q_mean"] == 0.0
    assert one_step["metrics"]["reward/process_token_mean"] == 0.0
    # Later mini-batches are scored after the optimizer steps on earlier ones: non-zero,
    # with no scoring pass of its own. More PRM steps move the PRM further.
    assert reference["metrics"]["prm/q_mean"] != 0.0
    assert reference["metrics"]["reward/process_token_mean"] != 0.0
    assert one_step["prm_logp_sum"] != pytest.approx(reference["prm_logp_sum"], rel=1e-6)
    # The order changes which PRM scores, never how the PRM trains.
    updated_first = _run(ckpt, 1, 1, 1, prm_update="before")
    assert updated_first["prm_logp_sum"] == pytest.approx(reference["prm_logp_sum"], rel=1e-6)
    assert updated_first["metrics"]["prm/loss"] == pytest.approx(reference["metrics"]["prm/loss"])
    # "before": the PRM is updated first and its (now non-zero) rewards reach the policy.
    # (At Q=0 the DPO variant's gradient equals the CE one, so the PRM ends the same.)
    before = _run(ckpt, 1, 1, 1, prm_update="before", prm_loss="dpo", schedule=(1, 1))
    assert before["metrics"]["prm/q_mean"] == 0.0  # scored before training on its batch
    assert before["metrics"]["reward/process_token_mean"] != 0.0
    assert before["metrics"]["policy/pg_loss"] != one_step["metrics"]["policy/pg_loss"]
    assert before["prm_logp_sum"] == pytest.approx(one_step["prm_logp_sum"], rel=1e-6)


def test_one_mini_batch_reuses_the_update_forward(megatron_ckpts):
    # With one PPO mini-batch the policy's "old" log-probs come from the update's own
    # forward. Its forward computes the same numbers with or without autograd, so every
    # metric and the updated weights equal those of the run with the separate forward.
    ckpt = megatron_ckpts["qwen2"]
    skipped = _run(ckpt, 1, 1, 1, mini_batches=1)
    separate = _run(ckpt, 1, 1, 1, mini_batches=1, sampling="forced")
    assert skipped == separate


@pytest.mark.parametrize("reference_kind", ["policy_basis", "policy_reference"])
def test_rollout_logprobs_stand_in_for_the_policy_forward(megatron_ckpts, reference_kind):
    # The engine's log-probs replace the policy forward wherever the sampling policy's are
    # read before the update (the rewards' basis or the PRM's reference, PPO's old
    # log-probs over 2 mini-batches). An engine that agrees with the trainer gives the same
    # update: same weights after, same losses and rewards.
    ckpt = megatron_ckpts["qwen2"]
    common = {"perturb_policy": 1, "process_reward_norm": "none"}
    common["process_reward_basis" if reference_kind == "policy_basis" else "prm_reference"] = (
        "policy"
    )
    trainer = _run(ckpt, 1, 1, 1, **common)
    rollout = _run(ckpt, 1, 1, 1, **common, sampling="rollout")
    assert rollout["policy_logp_sum"] == pytest.approx(trainer["policy_logp_sum"], rel=1e-6)
    assert rollout["prm_logp_sum"] == pytest.approx(trainer["prm_logp_sum"], rel=1e-6)
    for key in ("policy/pg_loss", "prm/loss", "reward/process_token_mean", "adv/std"):
        assert rollout["metrics"][key] == pytest.approx(trainer["metrics"][key], rel=1e-5), key
    assert rollout["metrics"]["mismatch/rollout_vs_trainer_abs_max"] < 1e-5
    # The batch's made-up rollout log-probs differ from the policy's: the comparison bites.
    assert trainer["metrics"]["mismatch/rollout_vs_trainer_abs_mean"] > 0.1


def test_dpo_pre_pass_uses_the_rollout_temperature(megatron_ckpts):
    # At the first step the PRM equals its reference, so Q = 0 for every sample when all
    # passes use one temperature, and the DPO loss's gradient equals the CE one. A
    # pre-pass at another temperature (the old bug: 1.0) gives non-zero opposite Qs.
    ckpt = megatron_ckpts["qwen2"]
    ce = _run(ckpt, 1, 1, 1, schedule=(1, 1), prm_loss="ce", temperature=0.7)
    dpo = _run(ckpt, 1, 1, 1, schedule=(1, 1), prm_loss="dpo", temperature=0.7)
    assert dpo["metrics"]["prm/q_mean"] == 0.0
    assert dpo["prm_logp_sum"] == pytest.approx(ce["prm_logp_sum"], rel=1e-6)


def test_process_rewards_against_the_policy(megatron_ckpts):
    # Before its first update the PRM equals its SFT reference, so PRIME's rewards are 0.
    # Measured against a policy that has left the SFT model, each token's reward is
    # beta * (log pi_ref - log pi_policy): the per-token KL penalty that basis adds. The PRM
    # itself trains the same either way (against its reference).
    ckpt = megatron_ckpts["qwen2"]
    common = {"schedule": (1, 1), "perturb_policy": 1, "process_reward_norm": "none"}
    plain = _run(ckpt, 1, 1, 1, **common)
    basis = _run(ckpt, 1, 1, 1, **common, process_reward_basis="policy")
    assert plain["metrics"]["reward/process_token_mean"] == 0.0
    expected = AlgoConfig().beta * basis["ref_minus_policy_token_mean"]
    assert abs(expected) > 1e-4
    assert basis["metrics"]["reward/process_token_mean"] == pytest.approx(expected, rel=1e-4)
    assert basis["prm_logp_sum"] == pytest.approx(plain["prm_logp_sum"], rel=1e-6)
    assert basis["metrics"]["policy/pg_loss"] != plain["metrics"]["policy/pg_loss"]


@pytest.mark.parametrize("nproc, tp, pp", [(1, 1, 1), (2, 1, 2)])
def test_prm_warmup_step_trains_the_prm_only(reference, megatron_ckpts, nproc, tp, pp):
    got = _run(megatron_ckpts["qwen2"], nproc, tp, pp, update_policy=False)
    # The PRM's update is the same as in a full step; the policy did not move.
    for key in ("prm/loss", "prm/grad_norm", "prm/q_mean", "train/entropy"):  # see COMPARED
        assert got["metrics"][key] == pytest.approx(reference["metrics"][key], rel=1e-5), key
    assert got["prm_logp_sum"] == pytest.approx(reference["prm_logp_sum"], rel=1e-6)
    assert not any(k.startswith("policy/") for k in got["metrics"])
    assert got["policy_logp_sum"] == pytest.approx(got["policy_logp_before_sum"], rel=1e-7)
    assert reference["policy_logp_sum"] != pytest.approx(got["policy_logp_sum"], rel=1e-5)


@pytest.mark.parametrize("nproc, tp, pp", [(2, 1, 2), (2, 1, 1)])
def test_prm_replay_trains_on_past_batches_too(reference, megatron_ckpts, nproc, tp, pp):
    # A narrower past batch joins the PRM's mini-batches (padded to the current width,
    # its groups kept apart): the PRM ends elsewhere, the same at every layout (PP runs
    # the joined rows at full width, DP splits them across ranks).
    ckpt = megatron_ckpts["qwen2"]
    single = _run(ckpt, 1, 1, 1, replay=1)
    got = _run(ckpt, nproc, tp, pp, replay=1)
    assert got["prm_logp_sum"] == pytest.approx(single["prm_logp_sum"], rel=1e-5)
    assert got["metrics"]["prm/loss"] == pytest.approx(single["metrics"]["prm/loss"], rel=1e-4)
    assert single["prm_logp_sum"] != pytest.approx(reference["prm_logp_sum"], rel=1e-6)
    assert single["metrics"]["prm/loss"] != pytest.approx(reference["metrics"]["prm/loss"])
