import math

import pytest

from prime_megatron.evidence.efficiency import (
    accuracy_ends,
    arm_curve,
    equal_time_steps,
    heldout,
    heldout_comparison,
    paired_difference,
    raws_over_training,
    sample_efficiency,
    smoothed_curve,
    timing_comparison,
)
from prime_megatron.evidence.metrics import (
    RunRecord,
    phase_means,
    run_settings,
    samples_series,
    series,
    split_rows,
    tail_means,
)
from prime_megatron.evidence.samples import RawsCount


def run(acc, samples=10.0, prompts=8.0, k=4, step_time=2.0, prm=0.0, evals=(), raws=None):
    steps = [
        {"step": i + 1, "rollout/accuracy": a, "train/samples": samples, "rollout/prompts": prompts,
         "time/step": step_time, "time/rollout": 1.0, "time/prm_update": prm,
         "time/policy_update": 0.5, "time/logprobs": 0.2, "time/weight_sync": 0.1}
        for i, a in enumerate(acc)
    ]  # fmt: skip
    events = {name: {"event": name, "pass@1": p, "prompts": n, "pass@1_ci95": 0.0}
              for name, p, n in evals}  # fmt: skip
    return RunRecord("r", steps, events, {"batch": {"samples_per_prompt": k}}, raws or {})


def test_split_rows_and_series():
    rows = [{"event": "eval_before", "pass@1": 0.5}, {"step": 2, "x": 1.0}, {"step": 1}]
    steps, events = split_rows(rows)
    assert [r["step"] for r in steps] == [1, 2] and list(events) == ["eval_before"]
    assert series(steps, "x") == [0.0, 1.0]
    assert series(steps, "x", default=-1.0) == [-1.0, 1.0]


def test_run_settings_reads_resolved_config():
    config = {"run": {"steps": 40}, "batch": {"samples_per_prompt": 4}, "algo": {"beta": 0.05}}
    settings = run_settings(config)
    assert (settings["steps"], settings["k"], settings["beta"]) == (40, 4, 0.05)
    assert settings["sft_steps"] is None
    assert RunRecord("r", [], {}, config).samples_per_prompt == 4


def test_samples_series_trained_and_generated():
    r = run([0.5, 0.5], samples=128.0, prompts=40.0, k=4)
    assert samples_series(r, "trained") == [128.0, 128.0]
    assert samples_series(r, "generated") == [160.0, 160.0]
    with pytest.raises(ValueError):
        samples_series(r, "other")


def test_phase_means_skip_warmup_and_split_other():
    steps = run([0.5] * 3, step_time=3.0, prm=0.4).steps
    steps[0]["time/step"] = 100.0  # warm-up, skipped
    m = phase_means(steps, skip=1)
    assert m["step"] == 3.0
    assert m["other"] == pytest.approx(3.0 - 1.0 - 0.4 - 0.5)  # logprobs + sync + untimed
    assert m["untimed"] == pytest.approx(3.0 - 1.0 - 0.2 - 0.4 - 0.5 - 0.1)
    assert phase_means(steps[:1], skip=1)["step"] == 100.0  # too short: keep everything
    assert phase_means([], skip=1) == {}


PRIME = [0.4, 0.5, 0.6, 0.7]
RLOO = [0.4, 0.45, 0.5, 0.5]


def test_smoothed_curve_aligns_samples_with_window_end():
    acc, spent = smoothed_curve(run(RLOO), 2, "trained")
    assert acc == pytest.approx([0.425, 0.475, 0.5]) and spent == [20.0, 30.0, 40.0]


def test_sample_efficiency_by_hand():
    # window 1: target 0.5, RLOO first reaches it at step 3 (30 samples), PRIME at step 2 (20)
    out = sample_efficiency([run(PRIME)], [run(RLOO)], window=1)
    assert out["target_accuracy"] == 0.5 and out["rloo_samples"] == 30.0
    assert out["prime_samples"] == 20.0 and out["prime_over_rloo"] == pytest.approx(2 / 3)
    assert out["rloo_samples_at_end"] == 40.0
    assert accuracy_ends([run(PRIME)], 1) == {"start": 0.4, "final": 0.7}
    # window 2: RLOO [.425, .475, .5] reaches .5 at 40; PRIME [.45, .55, .65] at 30
    out = sample_efficiency([run(PRIME)], [run(RLOO)], window=2)
    assert (out["rloo_samples"], out["prime_samples"]) == (40.0, 30.0)
    assert out["per_seed"] == [pytest.approx(0.75)]
    with pytest.raises(ValueError, match="window"):
        sample_efficiency([run(PRIME)], [run(RLOO)], window=5)


def test_steps_without_rollout_are_skipped_but_their_samples_count():
    r = run([0.4, 0.5, 0.6])
    del r.steps[1]["rollout/accuracy"]  # served from the carry-over buffer: nothing generated
    r.steps[1]["rollout/prompts"] = 0.0
    assert smoothed_curve(r, 1, "trained") == ([0.4, 0.6], [10.0, 30.0])
    assert smoothed_curve(r, 2, "generated") == ([0.5], [64.0])


def test_sample_efficiency_never_reached_and_seed_mean():
    out = sample_efficiency([run([0.1] * 4)], [run(RLOO)], window=1)
    assert out["prime_samples"] is None and out["prime_over_rloo"] is None
    curve = arm_curve([run([0.2, 0.4]), run([0.4, 0.8])], 1, "trained")
    assert curve["mean"] == pytest.approx([0.3, 0.6]) and curve["min"] == [0.2, 0.4]
    assert curve["samples"] == [10.0, 20.0]


def test_heldout_pools_seeds():
    runs = [run([0.5], evals=[("eval_after", 0.5, 1000)]),
            run([0.5], evals=[("eval_after", 0.6, 1000)])]  # fmt: skip
    h = heldout(runs)
    assert h["pass@1"] == pytest.approx(0.55) and h["per_seed"] == [0.5, 0.6]
    assert h["ci95"] == pytest.approx(1.96 * math.sqrt(0.55 * 0.45 / 2000))
    assert heldout(runs, "eval_before") is None


def test_heldout_comparison_difference():
    prime = [run([0.5], evals=[("eval_after", 0.6, 100), ("eval_before", 0.5, 100)])]
    rloo = [run([0.5], evals=[("eval_after", 0.5, 100), ("eval_before", 0.5, 100)])]
    c = heldout_comparison(prime, rloo)
    assert c["prime_minus_rloo"] == pytest.approx(0.1)
    half = [1.96 * math.sqrt(0.24 / 100), 1.96 * math.sqrt(0.25 / 100)]
    assert c["diff_ci95"] == pytest.approx(math.hypot(*half))
    assert c["before"]["pass@1"] == 0.5 and c["before"]["prompts_per_seed"] == 100
    assert c["before"]["per_run"] == [0.5, 0.5]
    assert c["paired"]["per_seed"] == [pytest.approx(0.1)] and c["paired"]["ci95_t"] is None


def test_paired_difference_is_per_seed_with_a_t_interval():
    def after(p):
        return run([0.5], evals=[("eval_after", p, 100)])

    prime, rloo = [after(0.6), after(0.7), after(0.5)], [after(0.5), after(0.5), after(0.5)]
    d = paired_difference(prime, rloo)
    assert d["per_seed"] == pytest.approx([0.1, 0.2, 0.0]) and d["mean"] == pytest.approx(0.1)
    assert d["ci95_t"] == pytest.approx(4.303 * 0.1 / math.sqrt(3))  # stdev 0.1, 3 seeds
    assert paired_difference(prime, [run([0.5])]) is None  # no evaluation to pair with


def test_equal_time_steps_leave_the_step_credit_probe_out():
    prime, rloo = run([0.5] * 10, step_time=3.0, prm=0.6), run([0.5] * 10)
    assert equal_time_steps(prime, rloo, skip=1) == {"time_ratio": 1.5, "rloo_steps": 15}
    for row in prime.steps:
        row["time/step_credit"] = 0.6  # measured, not part of PRIME: (3.0 - 0.6) / 2.0
    plan = equal_time_steps(prime, rloo, skip=1)
    assert plan["time_ratio"] == pytest.approx(1.2) and plan["rloo_steps"] == 12
    with pytest.raises(ValueError, match="no step times"):
        equal_time_steps(prime, run([0.5] * 3, step_time=0.0), skip=1)


def test_timing_comparison_ratio():
    t = timing_comparison([run([0.5] * 3, step_time=3.0, prm=0.6)], [run([0.5] * 3)], skip=1)
    assert t["prime_over_rloo"] == pytest.approx(1.5)
    assert t["prime_over_rloo_excluding_rollout"] == pytest.approx(2.0)  # 2.0 / 1.0
    assert t["rloo"]["prm_update"] == 0.0


def test_raws_over_training_pools_runs_in_stretches():
    a = run([0.5], raws={1: RawsCount(10, 5, 1), 2: RawsCount(10, 5, 0), 3: RawsCount(10, 5, 2)})
    b = run([0.5], raws={1: RawsCount(10, 5, 1)})
    out = raws_over_training([a, b], bins=2)
    assert [s["steps"] for s in out] == [[1, 2], [3, 3]]
    assert out[0]["samples"] == 30 and out[0]["raws"] == 2
    assert out[0]["raws_rate"] == pytest.approx(2 / 30)
    assert out[0]["raws_among_correct"] == pytest.approx(2 / 15)
    assert out[0]["ci95"] == pytest.approx(1.96 * math.sqrt((2 / 30) * (28 / 30) / 30))


def test_heldout_sampled_key_and_paired_change():
    prime = [run([0.5], evals=[("eval_after", 0.6, 100), ("eval_before", 0.5, 100)])]
    prime[0].events["eval_after"].update({"sampled_pass@1": 0.7, "sampled_pass@1_change": 0.05})
    prime[0].events["eval_before"]["sampled_pass@1"] = 0.65
    rloo = [run([0.5], evals=[("eval_after", 0.5, 100)])]
    c = heldout_comparison(prime, rloo, key="sampled_pass@1")
    assert c["prime"]["per_seed"] == [0.7] and c["prime"]["per_seed_paired_change"] == [0.05]
    assert c["rloo"] is None and c["prime_minus_rloo"] is None
    assert c["before"]["pass@1"] == 0.65
    assert heldout_comparison(rloo, rloo, key="sampled_pass@1") is None


def test_tail_means_average_the_last_third_where_present():
    steps = [{"step": i, "prm/pairwise_acc": i / 10} for i in range(1, 10)]
    steps[8]["credit/prm_auroc"] = 0.9  # only some steps measure step credit
    steps[7]["prm/pairwise_acc"] = None
    out = tail_means(steps, ("prm/", "credit/"))
    assert out["first_step"] == 7 and out["last_step"] == 9
    assert out["prm/pairwise_acc"] == pytest.approx((0.7 + 0.9) / 2)
    assert out["credit/prm_auroc"] == 0.9
    assert tail_means([], ("prm/",)) == {}
