"""End-to-end: the PRIME loop under torchrun with TP=2 and PP=2, resume, crash-safety,
outcome-only RLOO, a two-node launch simulated on one machine, and a run that starts from
an HF dir whose exported policy tools/eval.py scores."""

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from prime_megatron.run_layout import RunLayout
from tests.e2e.conftest import launch, run_ok, step_records
from tests.torchrun import free_port

TOOLS = Path(__file__).resolve().parents[2] / "tools"
TASK_TEXT = "47+38-19\n85"


def _finite(record: dict) -> bool:
    return all(v is None or not isinstance(v, float) or math.isfinite(v) for v in record.values())


# Each layout also runs the PRM's own schedule with its L1 term, one of the two PRM
# references (with the SFT one, the default job's rewards net of the sampling policy), and
# the online step credit (on the batch and on the SFT-sample probe) every step.
@pytest.mark.parametrize("tp, pp, prm_reference, basis",
                         [(2, 1, "sft", "policy"), (1, 2, "policy", "prm_reference")])  # fmt: skip
def test_prime_steps_at_layout(tmp_path, sft_ckpt, tp, pp, prm_reference, basis):
    run = tmp_path / "run"
    layout = [f"parallel.tensor_parallel={tp}", f"parallel.pipeline_parallel={pp}"]
    prm = [f"algo.prm_reference={prm_reference}", f"algo.process_reward_basis={basis}",
           "batch.prm_mini_batches_per_step=2", "algo.prm_epochs=2", "algo.prm_l1_coef=0.01",
           "run.step_credit_every=1"]  # fmt: skip
    out = run_ok(run, 2, f"sft.checkpoint={sft_ckpt}", "run.steps=3", "run.verify_sync_every=1",
                 *layout, *prm)  # fmt: skip
    records = step_records(run)
    assert [r["step"] for r in records] == [1, 2, 3]
    for r in records:
        assert _finite(r), r
        assert 0.0 <= r["prm/pairwise_acc"] <= 1.0 and 0.0 <= r["prm/sign_acc"] <= 1.0
        assert r["prm/abs_q"] >= 0.0
        # The 60-step SFT model errs at once (no correct step before the first wrong one, so
        # no AUROC is defined); what is checked here is that both measurements ran.
        assert r["credit_sft_samples/wrong_steps"] > 0 and r["credit/wrong_steps"] > 0
        assert r["verify/greedy_match"] == 1.0, r  # vLLM == Megatron after every sync
        assert r["sync/weight_version"] == r["step"] + 1  # initial sync + one per step
    assert "implicit PRM, mean over steps" in out
    assert "held-out accuracy" in out
    # The console holds the run's own lines; upstream warnings are in each rank's log file.
    assert "WARNING" not in out and "Warning" not in out, out[-4000:]
    assert "RL: 100%" in out
    assert "time: RL" in out and "time: SFT" not in out  # the SFT checkpoint was reused
    assert "vllm" in (run / "logs" / "rank_1.log").read_text()
    # The policy moved away from the SFT start, and the export loads as HF.
    start = load_file(str(_export_sft(sft_ckpt, tmp_path) / "model.safetensors"))
    final = load_file(str(run / "policy_hf" / "model.safetensors"))
    assert set(start) == set(final)
    assert any(not torch.equal(start[k], final[k]) for k in start)
    _assert_tokenizer_round_trips(run / "policy_hf")


def _assert_tokenizer_round_trips(model_dir: Path) -> None:
    """The export carries the run's tokenizer, and AutoTokenizer (which picks Qwen2's own
    pipeline next to its config.json) reproduces the task text exactly."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    ids = tokenizer.encode(TASK_TEXT, add_special_tokens=False)
    assert len(ids) == len(TASK_TEXT) and tokenizer.decode(ids) == TASK_TEXT


def _export_sft(sft_ckpt, tmp_path):
    out = tmp_path / "sft_hf"
    script = TOOLS / "convert_megatron_to_hf.py"
    proc = subprocess.run([sys.executable, str(script), "--ckpt", str(sft_ckpt), "--out", str(out)],
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return out


def test_train_from_an_hf_dir_and_eval_the_export(tmp_path, sft_ckpt):
    """model.source=hf starts from an HF dir (mapped in memory) on the user's files; the
    exported policy_hf, scored by tools/eval.py, gives the run's own eval_after."""
    data = RunLayout(sft_ckpt.parent / "warmup")  # the sft_ckpt run wrote the task's files
    run = RunLayout(tmp_path / "run")
    run_ok(run.root, 1, "model.source=hf", f"model.path={_export_sft(sft_ckpt, tmp_path)}",
           f"data.train_files=[{data.train_data}]", f"data.val_files=[{data.heldout_data}]",
           "run.steps=1", "run.eval_samples=0")  # fmt: skip
    assert json.loads(run.resolved_inputs.read_text())["start"]["format"] == "hf"
    _assert_tokenizer_round_trips(run.policy_hf)
    _assert_tokenizer_round_trips(run.prm_hf)  # the implicit PRM is exported alike
    from transformers import AutoModelForCausalLM

    policy, prm = (AutoModelForCausalLM.from_pretrained(d).state_dict()
                   for d in (run.policy_hf, run.prm_hf))  # fmt: skip
    assert policy.keys() == prm.keys()
    assert any(not torch.equal(policy[k], prm[k]) for k in policy)  # its own weights
    eval_after = [r for r in map(json.loads, run.metrics.read_text().splitlines())
                  if r.get("event") == "eval_after"][0]  # fmt: skip
    proc = subprocess.run(
        [sys.executable, str(TOOLS / "eval.py"), "--model", str(run.policy_hf),
         "--data", str(data.heldout_data), "--prompts", str(int(eval_after["prompts"])),
         "--max-prompt-len", "64", "--max-response-len", "48",
         "--responses", str(tmp_path / "responses.jsonl")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    scored = json.loads([x for x in proc.stdout.splitlines() if x.startswith('{"model"')][-1])
    assert scored["pass@1"] == eval_after["pass@1"], (scored, eval_after)
    # Every held-out response is kept, with its row and score, before and after RL.
    for name in ("eval_before", "eval_after"):
        lines = run.eval_responses(name).read_text().splitlines()
        responses = [json.loads(x) for x in lines]
        assert [r["row"] for r in responses] == list(range(int(eval_after["prompts"])))
        assert all(isinstance(r["response"], str) for r in responses)
    accuracy = sum(r["score"] for r in responses) / len(responses)
    assert round(accuracy, 4) == eval_after["pass@1"], (accuracy, eval_after)
    # tools/eval.py on the export writes the same greedy responses, in the same format.
    written = (tmp_path / "responses.jsonl").read_text().splitlines()
    assert written == run.eval_responses("eval_after").read_text().splitlines()


def test_resume_is_exact(tmp_path, sft_ckpt):
    # With the PRM's replay of the previous step's batch, which the checkpoint must carry:
    # step 3 of the resumed run trains its PRM on step 2's batch too.
    common = [f"sft.checkpoint={sft_ckpt}", "run.steps=4", "run.save_every=2", "run.eval_prompts=0",
              "algo.prm_replay_steps=1"]  # fmt: skip
    run_ok(tmp_path / "straight", 1, *common)
    # The interrupted run also offloads idle models: on CPU the copies are no-ops, so this
    # checks that the phase hooks and the restore before saving change nothing.
    common.append("model.offload_idle=true")
    run_ok(tmp_path / "stopped", 1, *common, "run.stop_after_steps=2")
    assert [r["step"] for r in step_records(tmp_path / "stopped")] == [1, 2]
    out = run_ok(tmp_path / "stopped", 1, *common)
    assert "resumed from" in out
    straight, resumed = step_records(tmp_path / "straight"), step_records(tmp_path / "stopped")
    assert [r["step"] for r in resumed] == [1, 2, 3, 4]
    for a, b in zip(straight, resumed, strict=True):
        a = {
            k: v
            for k, v in a.items()
            if not k.startswith(("time/", "sync/seconds", "sync/gather", "sync/push"))
        }
        b = {k: v for k, v in b.items() if k in a}
        assert a == b, (a, b)
    w1 = load_file(str(tmp_path / "straight" / "policy_hf" / "model.safetensors"))
    w2 = load_file(str(tmp_path / "stopped" / "policy_hf" / "model.safetensors"))
    assert all(torch.equal(w1[k], w2[k]) for k in w1)


def test_a_smaller_prm_of_its_own_start_trains_resumes_and_exports_at_its_shape(tmp_path, sft_ckpt):
    """prm_model: a 2-layer PRM beside the 4-layer policy, SFT-trained by the same recipe
    into its own checkpoint, measured against its own frozen start; the run saves both
    models, resumes (at another layout: TP=2) and exports each at its own shape."""
    run, prm_sft = tmp_path / "run", tmp_path / "prm-sft"
    common = [f"sft.checkpoint={sft_ckpt}", f"prm_model.sft_checkpoint={prm_sft}",
              "prm_model.source=synthetic", "prm_model.num_layers=2",
              "algo.process_reward_basis=prm_reference", "algo.prm_replay_steps=1",
              "run.steps=2", "run.save_every=1", "run.eval_prompts=0"]  # fmt: skip
    out = run_ok(run, 1, *common, "run.stop_after_steps=1")
    assert f"SFT: 60 steps on 600 worked solutions -> {prm_sft}" in out  # the PRM's own
    assert out.count("SFT: 60 steps") == 1  # the policy's was reused
    saved = run / "checkpoints" / "step_000001"
    assert (saved / "prm" / "metadata.json").is_file() and not (saved / "prm_ref").exists()
    out = run_ok(run, 2, *common, "parallel.tensor_parallel=2")
    assert "resumed from" in out and "SFT: 60 steps" not in out
    records = step_records(run)
    assert [r["step"] for r in records] == [1, 2]
    assert all(_finite(r) and r["prm/abs_q"] >= 0.0 for r in records)
    shapes = {name: json.loads((run / name / "config.json").read_text())["num_hidden_layers"]
              for name in ("policy_hf", "prm_hf")}  # fmt: skip
    assert shapes == {"policy_hf": 4, "prm_hf": 2}
    _assert_tokenizer_round_trips(run / "prm_hf")
    # The PRM trained away from its own start, which has its shape.
    start = load_file(str(_export_sft(prm_sft, tmp_path) / "model.safetensors"))
    final = load_file(str(run / "prm_hf" / "model.safetensors"))
    assert set(start) == set(final) and not any(".layers.2." in k for k in final)
    assert any(not torch.equal(start[k], final[k]) for k in start)


def test_a_shipped_sft_checkpoint_of_the_same_recipe_replaces_the_warmup(tmp_path, sft_ckpt):
    shipped = tmp_path / "shipped"
    shutil.copytree(sft_ckpt, shipped / "tiny")
    (shipped / "tiny" / "provenance.json").write_text(json.dumps({"trained": "by the fixture"}))
    ckpt = tmp_path / "sft"
    common = ["run.steps=1", "run.eval_prompts=0", f"sft.shipped_dir={shipped}"]
    out = run_ok(tmp_path / "run", 1, *common, f"sft.checkpoint={ckpt}")
    assert "copied the shipped checkpoint tiny (same recipe; trained by the fixture)" in out
    assert "SFT: 60 steps" not in out and len(step_records(tmp_path / "run")) == 1
    files = sorted(p.relative_to(ckpt) for p in ckpt.rglob("*") if p.is_file())
    source = shipped / "tiny"
    assert files == sorted(p.relative_to(source) for p in source.rglob("*") if p.is_file())
    assert all((ckpt / f).read_bytes() == (source / f).read_bytes() for f in files)
    # Not allowed to use it (or another recipe): the warm-up is trained.
    own = [f"sft.checkpoint={tmp_path / 'own_sft'}", "sft.use_shipped=false"]
    out = run_ok(tmp_path / "own", 1, *common, *own)
    assert "SFT: 60 steps" in out and "copied the shipped" not in out


def test_crash_mid_save_leaves_previous_checkpoint(tmp_path, sft_ckpt):
    run = tmp_path / "run"
    common = [f"sft.checkpoint={sft_ckpt}", "run.steps=3", "run.save_every=1", "run.eval_prompts=0"]
    proc = launch(run, 1, *common, env={"PRIME_FAULT_INJECT": "save:2"})
    assert proc.returncode != 0 and "simulated crash" in proc.output
    ckpts = run / "checkpoints"
    assert (ckpts / "step_000001" / "trainer_state.json").is_file()
    assert not (ckpts / "step_000002").exists()  # only the .partial leftovers
    out = run_ok(run, 1, *common)
    assert "resumed from" in out and "step_000001" in out
    assert [r["step"] for r in step_records(run)][-2:] == [2, 3]


@pytest.mark.parametrize("process_rewards", ["none", "oracle"])
def test_outcome_only_rloo_mode(tmp_path, sft_ckpt, process_rewards):
    """RLOO without a PRM; with the oracle, the task's labels are its process stream."""
    run = tmp_path / "run"
    oracle = ["algo.process_reward_source=oracle", "algo.process_gamma=0"]
    run_ok(run, 1, f"sft.checkpoint={sft_ckpt}", "run.steps=2", "use_prm=false",
           "run.eval_prompts=0", *(oracle if process_rewards == "oracle" else []))  # fmt: skip
    records = step_records(run)
    assert len(records) == 2 and all("prm/pairwise_acc" not in r for r in records)
    assert all(_finite(r) for r in records)
    token_means = [r.get("reward/process_token_mean") for r in records]
    if process_rewards == "none":
        assert token_means == [None, None]
    else:  # -1 on each wrong sample's first wrong token; the 60-step SFT model errs often
        assert all(m <= 0 for m in token_means) and min(token_means) < 0, token_means


def test_two_node_launch_on_one_machine(tmp_path, sft_ckpt):
    port = free_port()
    args = (
        f"sft.checkpoint={sft_ckpt}",
        "run.steps=2",
        "run.eval_prompts=0",
        "parallel.tensor_parallel=2",
    )
    nodes = [
        launch(tmp_path / "run", 1, *args, nnodes=2, node_rank=r, port=port, wait=False)
        for r in (0, 1)
    ]
    outputs = [p.communicate(timeout=900)[0] for p in nodes]
    assert all(p.returncode == 0 for p in nodes), outputs[0][-4000:] + outputs[1][-4000:]
    assert [r["step"] for r in step_records(tmp_path / "run")] == [1, 2]
