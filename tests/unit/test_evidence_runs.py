"""The launcher and readers, and both benchmark scripts end to end on fabricated runs
(finished-run markers make the scripts reuse them instead of training)."""

import importlib.util
import json
import subprocess
from pathlib import Path

import pytest
import yaml

from prime_megatron.data.tokenizer import build_char_tokenizer
from prime_megatron.evidence import runs
from prime_megatron.evidence.runs import (
    launch,
    load_run,
    load_samples,
    spec_from_args,
    trainer_args,
)
from prime_megatron.evidence.samples import RawsCount
from prime_megatron.run_layout import RunLayout

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
PROMPT = "47+38-19"
RESPONSES = ["47+38=85\n85-19=66\n\\boxed{66}", "47+38=84\n85-19=66\n\\boxed{66}",
             "47+38=85\n85-19=67\n\\boxed{67}", "47+38=85\n85-19=66\n\\boxed{66}"]  # fmt: skip


def benchmark(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_run(
    run_dir: Path, steps: int, use_prm: bool, args=None, acc0: float = 0.4, after: float = 0.6
) -> None:
    """A finished run: metrics, config, one dump per step (and the marker if ``args``);
    ``after``: its held-out greedy accuracy after RL (sampled: 0.1 lower)."""
    tok = build_char_tokenizer()
    run_dir.mkdir(parents=True)
    config = {"run": {"steps": steps}, "batch": {"samples_per_prompt": 4}, "use_prm": use_prm}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    lines = [{"event": "eval_before", "pass@1": 0.5, "pass@1_ci95": 0.03, "prompts": 1000}]
    for s in range(1, steps + 1):
        lines.append({"step": s, "rollout/accuracy": acc0 + 0.05 * s, "train/samples": 4.0,
                      "rollout/prompts": 2.0, "time/step": 2.0 + use_prm, "time/rollout": 1.0,
                      "time/prm_update": 0.5 * use_prm, "time/policy_update": 0.5})  # fmt: skip
    lines.append({"event": "eval_after", "pass@1": after, "pass@1_ci95": 0.03, "prompts": 1000,
                  "sampled_pass@1": after - 0.1})  # fmt: skip
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    prompt_ids = [tok.bos_token_id, *tok.encode(PROMPT + "\n", add_special_tokens=False)]
    (run_dir / "samples").mkdir()
    for s in range(1, steps + 1):
        rows = []
        for r in RESPONSES:
            ids = [*tok.encode(r, add_special_tokens=False), tok.eos_token_id]
            # the second line is wrong in RESPONSES[2]: give it less reward after step 1
            q = [0.0 if s == 1 else (-0.1 if 9 <= i < 18 and "67" in r else 0.05)
                 for i in range(len(ids))]  # fmt: skip
            rows.append({"step": s, "row_index": 0, "prompt_ids": prompt_ids, "response_ids": ids,
                         "outcome": float("66" in r), "q": q if use_prm else None})  # fmt: skip
        (run_dir / "samples" / f"step_{s:06d}.jsonl").write_text(
            "".join(json.dumps(x) + "\n" for x in rows)
        )
    if args is not None:
        RunLayout(run_dir).benchmark_done.write_text(json.dumps(args))


def test_trainer_args_share_sft_and_vary_data_seed(tmp_path):
    se = benchmark("sample_efficiency")
    args = se.parse(["--out", str(tmp_path), "--steps", "7", "--eval-prompts", "1500",
                     "--override", "algo.beta=0.1"])  # fmt: skip
    spec = spec_from_args(args, tmp_path)
    assert spec.sft_checkpoint == str(tmp_path / "sft")
    a = trainer_args(spec, tmp_path / "rloo_seed3", use_prm=False, seed=3)
    assert {"use_prm=false", "data.seed=3", "run.seed=1", "run.steps=7",
            "synthetic.heldout_prompts=1500", "run.dump_samples_every=1",
            f"sft.checkpoint={tmp_path / 'sft'}"} <= set(a)  # fmt: skip
    assert a[-1] == "algo.beta=0.1" and "--config" not in a
    # unset hyperparameters are left to the trainer (the default job's recipe)
    assert not any(x.startswith(("sft.steps", "batch.", "synthetic.train")) for x in a)
    b = trainer_args(spec, tmp_path / "prime_seed1", use_prm=True, seed=1)
    shared = [x for x in a if not x.startswith(("use_prm", "data.seed", "run.output_dir"))]
    assert shared == [x for x in b if not x.startswith(("use_prm", "data.seed", "run.output"))]


def test_trainer_args_pass_given_hyperparameters_and_config(tmp_path):
    args = benchmark("step_credit").parse(["--launch", str(tmp_path), "--sft-steps", "20",
                                           "--k", "8", "--config", "c.yaml"])  # fmt: skip
    a = trainer_args(spec_from_args(args, tmp_path), tmp_path / "p", use_prm=True, seed=1)
    assert a[:2] == ["--config", "c.yaml"]
    assert {"sft.steps=20", "batch.samples_per_prompt=8", "use_prm=true"} <= set(a)
    assert not any(x.startswith("synthetic.heldout") for x in a)  # 1000: the default


def test_launch_reuses_a_finished_run(tmp_path, monkeypatch):
    def no_training(*a, **k):
        raise AssertionError("should not train")

    monkeypatch.setattr(subprocess, "run", no_training)
    write_run(tmp_path / "r", 1, True, args=["x=1"])
    launch(tmp_path / "r", ["x=1"])
    assert (tmp_path / "r" / "metrics.jsonl").is_file()


class _Done:
    def __init__(self, code):
        self.returncode = code


def test_launch_replaces_a_stale_run_and_reports_failures(tmp_path, monkeypatch):
    write_run(tmp_path / "r", 1, True, args=["x=1"])
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: _Done(0))
    launch(tmp_path / "r", ["x=2"])  # other arguments: start over
    assert not (tmp_path / "r" / "metrics.jsonl").exists()
    assert json.loads(RunLayout(tmp_path / "r").benchmark_done.read_text()) == ["x=2"]
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: _Done(3))
    with pytest.raises(RuntimeError, match="exited with 3"):
        launch(tmp_path / "r", ["x=3"])
    assert not RunLayout(tmp_path / "r").benchmark_done.exists()


def test_launch_refuses_to_clear_a_foreign_dir(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(RuntimeError, match="not a run dir"):
        runs._clear(tmp_path / "mine")


def test_load_run_reads_metrics_config_and_dumps(tmp_path):
    write_run(tmp_path / "r", 2, use_prm=False)
    record = load_run(tmp_path / "r")
    assert [s["step"] for s in record.steps] == [1, 2]
    assert set(record.events) == {"eval_before", "eval_after"}
    assert record.samples_per_prompt == 4
    assert record.raws == {1: RawsCount(4, 3, 1), 2: RawsCount(4, 3, 1)}
    samples = load_samples(tmp_path / "r")
    assert samples[2].response == RESPONSES[2] and samples[2].prompt == PROMPT


def test_sample_efficiency_script_on_finished_runs(tmp_path, capsys):
    se = benchmark("sample_efficiency")
    argv = ["--out", str(tmp_path), "--seeds", "2", "--steps", "4", "--window", "2", "--bins", "2"]
    args = se.parse(argv)
    spec = spec_from_args(args, tmp_path)
    for seed in (1, 2):
        for arm, use_prm in se.ARMS.items():
            run_dir = tmp_path / f"{arm}_seed{seed}"
            acc0 = 0.45 if use_prm else 0.4
            write_run(run_dir, 4, use_prm, trainer_args(spec, run_dir, use_prm, seed), acc0)
    se.main(argv)
    out = json.loads(capsys.readouterr().out)
    assert out["benchmark"] == "sample_efficiency" and out["seeds"] == 2
    assert out["steps"] == 4 and out["k"] == 4  # from the runs' resolved config
    # RLOO smoothed [.475, .525, .575] -> target .575 at 16 samples; PRIME reaches it at 12
    reach = out["samples_to_rloo_final"]
    assert (reach["rloo_samples"], reach["prime_samples"]) == (16.0, 12.0)
    assert out["time_per_step"]["prime_over_rloo"] == 1.5
    targets = out["targets"]
    assert targets["prime_samples_le_0.5x_rloo"] is False
    assert targets["prime_time_le_1.2x_rloo"] is False
    assert targets["pairwise_acc_ge_0.75"] is None  # these runs logged no PRM metrics
    assert out["raws_over_training"]["rloo"][0]["raws_rate"] == 0.25
    assert out["heldout"]["prime_minus_rloo"] == 0.0
    for png in out["plots"]:
        assert Path(png).read_bytes()[:4] == b"\x89PNG"


def test_step_credit_script_on_a_dumped_run(tmp_path, capsys):
    write_run(tmp_path / "prime", 3, use_prm=True)
    benchmark("step_credit").main(["--run-dir", str(tmp_path / "prime"), "--bins", "2",
                                   "--repeats", "3"])  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    assert out["benchmark"] == "step_credit" and out["dumps"] == 3 and out["steps"] == 3
    assert out["untrained"]["auroc"] == 0.5 and out["untrained"]["max_abs_q"] == 0.0
    # RESPONSES[2]: its wrong line gets -0.9 against +0.45 for the line before it;
    # RESPONSES[1] (wrong first line, nothing before it) adds a positive with +0.45.
    assert [s["steps"] for s in out["over_training"]] == [[2, 2], [3, 3]]
    assert out["auroc_final"] == 0.75 and out["target_auroc_ge_0.8"] is False
    assert out["raws_responses"]["responses"] == 2


def test_sample_efficiency_oracle_arm(tmp_path, capsys):
    se = benchmark("sample_efficiency")
    argv = ["--out", str(tmp_path), "--seeds", "2", "--steps", "4", "--window", "2", "--bins",
            "2", "--oracle-arm", "--override", "algo.process_gamma=0.5",
            "--prime-override", "algo.process_coef=3"]  # fmt: skip
    args = se.parse(argv)
    spec = spec_from_args(args, tmp_path)
    arms = se.arm_args(args)
    assert list(arms) == ["prime", "rloo", "oracle"] and arms["oracle"][0] is False
    assert arms["prime"] == (True, ("algo.process_coef=3",))  # the PRIME arm's alone
    assert all("algo.process_coef=3" not in arms[arm][1] for arm in ("rloo", "oracle"))
    for seed in (1, 2):
        for arm, (use_prm, overrides) in arms.items():
            run_dir = tmp_path / f"{arm}_seed{seed}"
            acc0 = {"prime": 0.45, "rloo": 0.4, "oracle": 0.55}[arm]
            write_run(run_dir, 4, use_prm, trainer_args(spec, run_dir, use_prm, seed, overrides),
                      acc0)  # fmt: skip
    oracle_args = trainer_args(spec, tmp_path / "oracle_seed1", False, 1, arms["oracle"][1])
    assert "algo.process_reward_source=oracle" in oracle_args and "use_prm=false" in oracle_args
    assert oracle_args[-1] == "algo.process_gamma=0.5"  # the passthrough override still wins
    se.main(argv)
    out = json.loads(capsys.readouterr().out)
    versus = out["oracle_vs_rloo"]
    # oracle smoothed [.625, .675, .725] is above RLOO's final .575 from its first point (8)
    reach = versus["samples_to_rloo_final"]
    assert (reach["rloo_samples"], reach["oracle_samples"]) == (16.0, 8.0)
    assert reach["oracle_over_rloo"] == 0.5
    assert versus["heldout"]["oracle_minus_rloo"] == 0.0 and "oracle" in versus["heldout"]
    assert versus["train_accuracy"]["final"] > out["train_accuracy"]["rloo"]["final"]
    assert set(out["raws_over_training"]) == {"prime", "rloo", "oracle"}


def test_sample_efficiency_equal_time_arm(tmp_path, capsys, monkeypatch):
    se = benchmark("sample_efficiency")
    argv = ["--out", str(tmp_path), "--seeds", "2", "--steps", "4", "--window", "2",
            "--equal-time-arm", "--oracle-arm"]  # fmt: skip
    args = se.parse(argv)
    spec = spec_from_args(args, tmp_path)
    for seed in (1, 2):
        for arm, (use_prm, overrides) in se.arm_args(args).items():
            run_dir = tmp_path / f"{arm}_seed{seed}"
            arm_run = trainer_args(spec, run_dir, use_prm, seed, overrides)
            write_run(run_dir, 4, use_prm, arm_run, after=0.7 if arm == "oracle" else 0.6)
        # PRIME 3.0 s per step, RLOO 2.0: its wall-clock buys RLOO 4 x 1.5 = 6 steps
        run_dir = tmp_path / f"{se.EQUAL_TIME}_seed{seed}"
        equal_run = trainer_args(spec, run_dir, False, seed, ("run.steps=6",))
        write_run(run_dir, 6, False, equal_run, after=0.6 + 0.05 * seed)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("should not train"))
    se.main(argv)  # every run, the equal-time ones too, is found finished with these args
    equal = json.loads(capsys.readouterr().out)["equal_time"]
    assert equal["time_ratio_per_seed"] == [1.5, 1.5] and equal["rloo_steps_per_seed"] == [6, 6]
    paired = equal["heldout_sampled"]["paired"]
    assert paired["per_seed"] == [-0.05, -0.1] and paired["mean"] == -0.075
    oracle = equal["oracle_minus_equal_time"]["greedy"]  # 0.7 against 0.65 and 0.7
    assert oracle["per_seed"] == [0.05, 0.0] and oracle["mean"] == 0.025
    targets = json.loads(json.dumps(se.equal_time_targets(equal)))
    assert targets == {"prime_greedy_ge_rloo_at_equal_time": False,
                       "prime_sampled_ge_rloo_at_equal_time": False}  # fmt: skip
    with pytest.raises(SystemExit):
        se.parse([*argv, "--override", "run.steps=9"])
