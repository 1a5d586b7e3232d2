"""The memory / step-time planner (prime_megatron/planning, tools/plan.py)."""

import dataclasses
import sys
from pathlib import Path

import pytest

from prime_megatron.models.arch import ModelArch
from prime_megatron.models.hf_factory import hf_config
from prime_megatron.planning.flops import forward_flops_per_token, step_time
from prime_megatron.planning.inputs import GIB, PlanInputs, plan_inputs
from prime_megatron.planning.memory import layer_activation_bytes, plan_memory
from prime_megatron.planning.params import stage_params, total_params
from prime_megatron.trainer.config import load_train_config

REPO = Path(__file__).resolve().parents[2]
QWEN_7B = REPO / "tools" / "hf_configs" / "qwen2.5-math-7b.json"
# Small enough to count by hand: h=8, 2 heads of 4, ffn 16, 2 layers, vocab 10.
TINY = dict(vocab_size=10, hidden_size=8, intermediate_size=16, num_hidden_layers=2,
            num_attention_heads=2, num_key_value_heads=1, head_dim=4,
            max_position_embeddings=32)  # fmt: skip


def tiny(architecture: str = "Qwen2ForCausalLM", **overrides) -> ModelArch:
    return ModelArch.from_hf_config(hf_config(architecture, **{**TINY, **overrides}))


def hf_count(architecture: str, **overrides) -> int:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_config(hf_config(architecture, **{**TINY, **overrides}))
    return sum(p.numel() for p in model.parameters())  # shared (tied) tensors counted once


def test_parameter_counts_by_hand_and_against_transformers():
    # Qwen2, GQA 2 q heads / 1 kv head: qkv (2+2)*4 x 8 + 16 bias = 144, o_proj 64,
    # SwiGLU 3 * 16 * 8 = 384, two norms 16 -> 608 per layer; embeddings and head 80 each,
    # final norm 8.
    assert total_params(tiny()) == 2 * 608 + 80 + 80 + 8 == hf_count("Qwen2ForCausalLM")
    # Llama (no q/k/v bias), tied embeddings: one 80-parameter matrix.
    llama = tiny("LlamaForCausalLM", tie_word_embeddings=True)
    assert total_params(llama) == 2 * 592 + 80 + 8
    assert total_params(llama) == hf_count("LlamaForCausalLM", tie_word_embeddings=True)


def test_qwen25_math_7b_has_its_published_size():
    from prime_megatron.checkpoint.hf_io import read_config_file

    arch = ModelArch.from_hf_config(read_config_file(QWEN_7B))
    assert total_params(arch) == 7_615_616_512  # "7.62B" on the model card
    norms = (2 * arch.num_layers + 1) * arch.hidden_size  # replicated on every TP rank
    # 152064 rows already divide 128 x 2: no padding, so TP=2 halves everything but norms.
    per_rank = stage_params(arch, 2, 1, 0, 152064)
    assert per_rank == (total_params(arch) - norms) // 2 + norms


def test_tp_and_pp_split_the_model():
    arch = tiny(num_key_value_heads=2)  # qkv 6 heads x 4 = 24 rows: 192 + 24 bias
    layer_tp2 = (216 + 64) // 2 + 384 // 2 + 16
    vocab_rows = 256 // 2 * 8  # padded to 128 x tp = 256 rows, half per TP rank
    assert stage_params(arch, 2, 1, 0, 256) == 2 * layer_tp2 + vocab_rows + 8 + vocab_rows
    assert stage_params(arch, 2, 2, 0, 256) == layer_tp2 + vocab_rows  # embedding stage
    assert stage_params(arch, 2, 2, 1, 256) == layer_tp2 + 8 + vocab_rows  # norm and head
    tied = tiny("LlamaForCausalLM", tie_word_embeddings=True)
    with pytest.raises(ValueError, match="tied embeddings under pipeline"):
        stage_params(tied, 1, 2, 0, 128)


def test_moments_follow_tp_pp_not_dp():
    arch = tiny(num_key_value_heads=2)
    small = plan_memory(arch, PlanInputs(gpus=2, device_bytes=GIB, tp=2))
    large = plan_memory(arch, PlanInputs(gpus=16, device_bytes=GIB, tp=2))
    params = stage_params(arch, 2, 1, 0, 256)
    for plan in (small, large):
        parts = plan.stages[0].parts
        # bf16 model: bf16 moments (torch AdamW state is shaped and typed like the
        # parameter), each DP replica holding its shard's full moments.
        assert parts["policy moments"] == 2 * params * 2 == parts["prm moments"]
        assert parts["policy weights"] == params * 2 == parts["policy grads"]


def test_activation_estimate_by_hand():
    arch = tiny()  # h 8, q 8, qkv 16 (1 kv head), ffn 16, 2 heads
    gpu = PlanInputs(gpus=1, device_bytes=GIB, seq_len=16, dtype_bytes=2)
    # per token: 4 h + qkv + q + 3 f = 32 + 16 + 8 + 48 = 104 elements of 2 bytes, x b s;
    # flash attention's fp32 log-sum-exp: b x heads x s x 4 bytes.
    assert layer_activation_bytes(arch, gpu, 2) == 2 * 16 * 104 * 2 + 2 * 2 * 16 * 4
    cpu = dataclasses.replace(gpu, platform="cpu", dtype_bytes=4)
    # unfused SwiGLU keeps silu's output (+f); unfused attention its fp32 s x s softmax.
    assert layer_activation_bytes(arch, cpu, 2) == 2 * 16 * 120 * 4 + 2 * 2 * 16 * 16 * 4


def _phase(plan, name: str):
    return next(p for p in plan.stages[0].phases if p.name == name)


def test_offload_idle_lowers_the_peak_to_the_busiest_phase():
    arch = ModelArch.from_hf_config(hf_config("Qwen2ForCausalLM"))
    base = PlanInputs(gpus=1, device_bytes=GIB, seq_len=256, micro_batch_size=4,
                      gpu_memory_utilization=0.5, sleep_between_rollouts=True,
                      resumes=False, runtime_bytes=0, bucket_bytes=0)  # fmt: skip
    resident = plan_memory(arch, base)
    offloaded = plan_memory(arch, dataclasses.replace(base, offload_idle=True))
    assert offloaded.peak_bytes < resident.peak_bytes
    rollout = _phase(offloaded, "rollout").columns
    assert rollout["weights"] == rollout["moments"] == 0  # every model in host memory
    parts = offloaded.stages[0].parts
    update = _phase(offloaded, "prm_update fwd+bwd").columns
    assert update["weights"] == parts["prm weights"]  # only the PRM on the device
    # The log-prob pass needs all three models either way.
    assert _phase(offloaded, "logprobs").total == _phase(resident, "logprobs").total
    # A restart loads the moments before the offloader first runs: that phase keeps all.
    restart = plan_memory(arch, dataclasses.replace(base, offload_idle=True, resumes=True))
    assert _phase(restart, "resume").columns["moments"] == 2 * parts["policy moments"]
    # Offloading is a no-op on CPU.
    cpu = dataclasses.replace(base, platform="cpu", offload_idle=True)
    assert (
        plan_memory(arch, cpu).peak_bytes
        == plan_memory(arch, dataclasses.replace(cpu, offload_idle=False)).peak_bytes
    )


@pytest.mark.parametrize(
    "overrides, models",
    [
        ([], {"policy", "prm", "ref"}),
        (["algo.prm_reference=policy"], {"policy", "prm"}),
        (["use_prm=false"], {"policy"}),
        (["use_prm=false", "algo.kl_coef=0.1"], {"policy", "ref"}),
    ],
)
def test_reference_and_prm_only_when_the_config_loads_them(overrides, models):
    cfg = load_train_config(None, overrides)
    plan = plan_memory(tiny(), plan_inputs(cfg, gpus=1, device_gib=1.0))
    parts = plan.stages[0].parts
    assert {name.split()[0] for name in parts if name.endswith(" weights")} == models
    assert any(p.name.startswith("prm_update") for p in plan.stages[0].phases) == ("prm" in models)


def test_fits_and_does_not_fit():
    arch = tiny()
    roomy = PlanInputs(gpus=1, device_bytes=8 * GIB, runtime_bytes=0)
    assert plan_memory(arch, roomy).fits
    assert not plan_memory(arch, dataclasses.replace(roomy, device_bytes=2**20)).fits
    # A KV cache too small for one max-length sequence: vLLM would refuse to start.
    starved = dataclasses.replace(roomy, gpu_memory_utilization=1e-4)
    assert plan_memory(arch, starved).vllm.sequences == 0
    assert not plan_memory(arch, starved).fits


def test_megatron_checkpoint_padding_is_used(tmp_path):
    from prime_megatron.checkpoint.megatron_io import ModelCheckpointMeta
    from prime_megatron.planning.source import resolve_model

    config = hf_config("Qwen2ForCausalLM", **TINY).to_dict()
    ModelCheckpointMeta(config, padded_vocab_size=512, params_dtype="bfloat16", saved_tp=4,
                        saved_pp=1).write(tmp_path)  # fmt: skip
    cfg = load_train_config(None, ["model.source=megatron", f"model.path={tmp_path}"])
    arch, vocab, _ = resolve_model(cfg)
    assert (arch.hidden_size, vocab) == (8, 512)
    assert plan_memory(arch, plan_inputs(cfg, 1, 1.0, padded_vocab=vocab)).padded_vocab == 512


def test_step_time_from_flops():
    arch = tiny()
    # matmul weights: 2 layers x (qkv 128 + o 64 + SwiGLU 384) + head 80 = 1232.
    assert forward_flops_per_token(arch, context=3.0) == 2 * 1232 + 4 * 2 * 2 * 4 * 3.0
    inp = PlanInputs(gpus=2, device_bytes=GIB, seq_len=8, samples_per_step=4, with_reference=False)
    t = step_time(arch, inp, peak_flops=1e3, mfu=0.5, rollout_mfu=0.1, prompt_tokens=4,
                  response_tokens=4)  # fmt: skip
    policy_fwd = 4 * 8 * forward_flops_per_token(arch, 4.5)
    assert t.flops["policy_update"] == 3 * policy_fwd
    assert t.seconds["policy_update"] == pytest.approx(3 * policy_fwd / (2 * 1e3 * 0.5))


def test_tool_prints_the_paper_recipe(capsys):
    sys.path.insert(0, str(REPO / "tools"))
    try:
        import plan as tool
    finally:
        sys.path.pop(0)
    args = ["--config", str(REPO / "configs/qwen25_math_7b_prime.yaml"), "--gpus", "8",
            "--gpu-mem-gb", "80", "--hf-config", str(QWEN_7B)]  # fmt: skip
    assert tool.main(args) == 0
    out = capsys.readouterr().out
    assert "7.616 B params" in out and "TP=2 PP=1 DP=4" in out and "step time" in out
    assert "DOES NOT FIT" in out  # micro-batch 8 x 4096 tokens without recomputation
    # Math-neutral changes that fit: weights split four ways, smaller micro-batches.
    assert tool.main([*args, "parallel.tensor_parallel=4", "batch.micro_batch_size=4"]) == 0
    assert "\nFITS" in capsys.readouterr().out
    assert tool.main([*args, "parallel.tensor_parallel=3"]) == 2  # config error, no traceback


def test_synthetic_source_is_the_default_jobs_model():
    from prime_megatron.planning.source import resolve_model

    cfg = load_train_config(str(REPO / "configs/tiny_cpu.yaml"))
    arch, vocab, source = resolve_model(cfg)
    assert (arch.hidden_size, arch.num_layers, arch.num_attention_heads) == (128, 4, 2)
    assert vocab == 0 and "synthetic" in source


@pytest.mark.parametrize(
    "overrides, policy_forward, prm_forwards",
    [
        ([], False, 0),  # the engine's log-probs serve as the sampling policy's
        (["algo.sampling_logp=trainer"], True, 0),  # the default job's basis is the policy
        (["algo.sampling_logp=trainer", "algo.process_reward_basis=prm_reference"], False, 0),
        (["algo.prm_update=before"], False, 1),  # the updated PRM scores the batch
        (["algo.prm_loss=dpo"], False, 1),  # the opposite-outcome Qs before the update
    ],
)
def test_planned_forward_passes_follow_the_step(overrides, policy_forward, prm_forwards):
    inp = plan_inputs(load_train_config(None, overrides), gpus=1, device_gib=1.0)
    assert (inp.policy_forward, inp.prm_extra_forwards) == (policy_forward, prm_forwards)


def test_a_smaller_prm_of_its_own_start_is_planned_at_its_shape():
    """prm_model: the PRM and its frozen reference (prm_ref) at the PRM's shape; the
    policy's reference is not loaded (no KL term)."""
    from prime_megatron.planning.source import resolve_model, resolve_prm_model

    cfg = load_train_config(str(REPO / "configs/tiny_cpu_small_prm.yaml"))
    arch, _, _ = resolve_model(cfg)
    prm = resolve_prm_model(cfg)
    assert (prm.num_layers, prm.hidden_size) == (2, arch.hidden_size)
    assert resolve_prm_model(load_train_config(str(REPO / "configs/tiny_cpu.yaml"))) is None
    plan = plan_memory(arch, plan_inputs(cfg, gpus=1, device_gib=1.0), prm)
    parts = plan.stages[0].parts
    assert {name.split()[0] for name in parts if name.endswith(" weights")} == {
        "policy", "prm", "prm_ref"
    }  # fmt: skip
    vocab = plan.padded_vocab
    assert parts["prm weights"] == parts["prm_ref weights"] == stage_params(prm, 1, 1, 0, vocab) * 4
    assert parts["prm moments"] < parts["policy moments"]
    assert parts["prm update activations"] < parts["policy update activations"]
    # The log-prob phase holds the three models it runs.
    logprobs = _phase(plan, "logprobs").columns["weights"]
    assert logprobs == parts["policy weights"] + 2 * parts["prm weights"]
    # Its passes cost the PRM's FLOPs, not the policy's.
    from prime_megatron.planning.flops import phase_flops

    inp = plan_inputs(cfg, gpus=1, device_gib=1.0)
    own, as_policy = (phase_flops(arch, inp, 16, 32, p) for p in (prm, None))
    assert own["prm_update"] < as_policy["prm_update"]
    assert own["policy_update"] == as_policy["policy_update"]


def test_tool_prints_the_prms_own_shape(capsys):
    sys.path.insert(0, str(REPO / "tools"))
    try:
        import plan as tool
    finally:
        sys.path.pop(0)
    config = str(REPO / "configs/tiny_cpu_small_prm.yaml")
    assert tool.main(["--config", config, "--gpus", "1", "--gpu-mem-gb", "16"]) == 0
    out = capsys.readouterr().out
    assert "PRM (prm_model): " in out and "hidden 128, 2 layers" in out
    assert "models: policy, PRM, the PRM's own reference;" in out
