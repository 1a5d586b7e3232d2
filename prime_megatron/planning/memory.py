"""Per-rank device memory of a PRIME job, part by part and phase by phase (estimates).

What each part is, as the code allocates it (file in brackets):

- weights: parameters per rank (``params.stage_params``) x the model dtype; policy, PRM
  and, when loaded, the frozen reference (trainer/setup.py ``build_models``). A PRM with
  a start of its own (``prm_model``) and its frozen copy (``prm_ref``) are counted at
  their own shape, with the policy's vocabulary padding.
- gradients: ``p.grad`` in the parameter dtype (no fp32 main-grad buffer: trainer/optim.py
  sums them over DP in place), alive only inside that model's update phase (``zero_grad``
  sets them to None after each optimizer step).
- AdamW moments: ``torch.optim.AdamW`` state, ``exp_avg`` and ``exp_avg_sq`` shaped and
  typed like the parameter (bf16 for a bf16 model, no fp32 master copy) and NOT sharded
  over DP: each DP replica keeps moments for its whole TP/PP shard (trainer/optim.py).
- optimizer step: the larger of the gradient norm's per-tensor fp64 square (two fp64
  copies of the largest tensor) and AdamW's temporary sqrt(v) (foreach on GPU: one copy of
  all moments; per tensor on CPU).
- activations: see ``layer_activation_bytes``; 1F1B keeps min(pp - stage, micro-batches)
  micro-batches of its layers alive on a stage; forward-only passes keep one layer's worth.
- logits: one micro-batch's [b, s, V/tp] in the model dtype, twice (Megatron's transposed
  copy in the forward, then the kernel's contiguous copy of the shifted view; in the
  backward their two gradients). Only on the last stage.
- log-prob chunk: the torch kernel's (kernels/reference.py) three fp32 chunk-sized
  temporaries; the Triton kernel on GPU keeps its tiles on chip.
- vLLM: see ``vllm_share``. weight sync: one bucket plus the largest gathered tensor
  (resharding/gather.py).

Phases follow the step (trainer/update.py, trainer/loop.py) and, with ``model.offload_idle``
on a GPU, the residency table of trainer/phases.py: a model's weights and moments leave the
device in phases that do not compute with it. Setup, a resume, held-out evaluation and
checkpoint saves keep every model resident. Counted is memory in use; PyTorch's caching
allocator may hold more (freed blocks it has not returned, fragmentation).
"""

from __future__ import annotations

from dataclasses import dataclass

from prime_megatron.kernels.reference import CHUNK_ELEMS
from prime_megatron.models.arch import ModelArch, padded_vocab_size
from prime_megatron.planning.inputs import GIB, PlanInputs
from prime_megatron.planning.params import largest_tensor, qkv_width, stage_params
from prime_megatron.trainer.phases import MODEL_NAMES, PHASE_MODELS

COLUMNS = ("weights", "moments", "grads", "activations", "optimizer", "vllm", "sync", "runtime")
TRAINED = ("policy", "prm")


def layer_activation_bytes(arch: ModelArch, inp: PlanInputs, micro_batch: int) -> int:
    """Tensors one transformer layer saves for its backward, for one micro-batch.

    Korthikanti et al. 2022 ("Reducing Activation Recomputation in Large Transformer
    Models", sec. 4.1) count the tensors each op saves; redone here for this
    architecture (no sequence parallelism, no recomputation, no dropout), per token:
    the inputs of the two RMSNorms and of the qkv and fc1 linears (4 h, replicated over
    TP), q/k/v ((heads + 2 groups) d / tp), the attention output (heads d / tp), the fc1
    output 2 f / tp and the SwiGLU output f / tp; unfused SwiGLU (cpu) also keeps silu's
    output (f / tp). Attention: flash (gpu) adds its fp32 log-sum-exp per head and query;
    unfused (cpu) keeps the [b, heads/tp, s, s] fp32 softmax and its cast to the dtype.
    """
    a, tp, s = inp.dtype_bytes, inp.tp, inp.seq_len
    h, f = arch.hidden_size, arch.ffn_hidden_size
    q = arch.num_attention_heads * arch.head_dim
    flash = inp.platform == "gpu"
    per_token = 4 * h + (qkv_width(arch) + q + 3 * f + (0 if flash else f)) // tp
    heads = arch.num_attention_heads // tp
    if flash:
        scores = micro_batch * heads * s * 4
    else:
        scores = micro_batch * heads * s * s * (4 + (a if a < 4 else 0))
    return micro_batch * s * per_token * a + scores


@dataclass(frozen=True)
class VllmShare:
    """One rank's vLLM worker when awake.

    GPU: vLLM takes ``gpu_memory_utilization`` x device memory (it must find that much free
    at start) and sizes its KV cache to what is left after its weights and the peak of its
    profiling forward. CPU: its weights plus the fixed ``rollout.kv_cache_gib``.
    """

    weights: int
    activations: int
    kv_cache: int
    kv_bytes_per_token: int
    max_model_len: int

    @property
    def total(self) -> int:
        return self.weights + self.activations + self.kv_cache

    @property
    def sequences(self) -> int:
        """Full-length sequences the KV cache holds at once (0: vLLM refuses to start)."""
        return self.kv_cache // (self.kv_bytes_per_token * self.max_model_len)


def vllm_share(arch: ModelArch, inp: PlanInputs) -> VllmShare:
    rtp, a = inp.rollout_tp, inp.rollout_dtype_bytes
    weights = stage_params(arch, rtp, 1, 0, arch.vocab_size) * a
    # KV heads are replicated when the rollout TP exceeds them.
    kv_heads = max(1, arch.num_query_groups // rtp)
    per_token = 2 * arch.num_layers * kv_heads * arch.head_dim * a
    tokens, seqs = _vllm_budget(inp)
    # Profiling forward: one layer's largest live tensors for the batched tokens, and the
    # sampler's fp32 logits and probabilities for the largest batch of sequences.
    layer = tokens * (3 * arch.ffn_hidden_size + qkv_width(arch)) // rtp * a
    layer += tokens * 2 * arch.hidden_size * a
    activations = layer + seqs * arch.vocab_size * 4 * 2
    if inp.platform == "cpu":
        kv = inp.kv_cache_bytes
    else:
        kv = max(0, int(inp.gpu_memory_utilization * inp.device_bytes) - weights - activations)
    return VllmShare(weights, activations, kv, per_token, inp.max_model_len)


def _vllm_budget(inp: PlanInputs) -> tuple[int, int]:
    """vLLM's default (max_num_batched_tokens, max_num_seqs) for the offline ``LLM`` class
    (vllm/engine/arg_utils.py; the CPU budget is the one rollout/engine.py sets)."""
    if inp.platform == "cpu":
        return max(inp.max_model_len, 2048), 256 * inp.rollout_tp
    if inp.device_bytes >= 70 * GIB:
        return 16384, 1024
    return 8192, 256


@dataclass(frozen=True)
class Phase:
    name: str
    columns: dict[str, int]  # COLUMNS -> bytes

    @property
    def total(self) -> int:
        return sum(self.columns.values())


@dataclass(frozen=True)
class StagePlan:
    stage: int
    parts: dict[str, int]  # what each piece of memory is, bytes per rank
    phases: list[Phase]

    @property
    def peak(self) -> Phase:
        return max(self.phases, key=lambda p: p.total)


@dataclass(frozen=True)
class MemoryPlan:
    inputs: PlanInputs
    padded_vocab: int
    vllm: VllmShare
    stages: list[StagePlan]  # the distinct pipeline stages: first, (middle,) last

    @property
    def peak_bytes(self) -> int:
        return max(s.peak.total for s in self.stages)

    @property
    def fits(self) -> bool:
        return self.peak_bytes <= self.inputs.device_bytes and self.vllm.sequences >= 1


def plan_memory(arch: ModelArch, inp: PlanInputs, prm_arch: ModelArch | None = None) -> MemoryPlan:
    """The plan of the policy ``arch``; ``prm_arch``: the PRM's own shape, when it starts
    from a checkpoint of its own (then with its own frozen reference, ``prm_ref``)."""
    arches = model_arches(arch, inp, prm_arch)
    for model_arch in arches.values():
        model_arch.check_layout(inp.tp, inp.pp)
    vllm = vllm_share(arch, inp)
    stages = sorted({0, inp.pp // 2, inp.pp - 1})
    plans = [_stage_plan(arches, inp, s, vllm) for s in stages]
    return MemoryPlan(inp, padded_vocab(arch, inp), vllm, plans)


def padded_vocab(arch: ModelArch, inp: PlanInputs) -> int:
    """The checkpoint's padding when known, else what conversion at this TP would pad to."""
    return inp.padded_vocab or padded_vocab_size(arch.vocab_size, inp.tp)


def model_arches(
    arch: ModelArch, inp: PlanInputs, prm_arch: ModelArch | None = None
) -> dict[str, ModelArch]:
    """The loaded models (``MODEL_NAMES``' order) and the shape of each."""
    prm = prm_arch or arch
    loaded = {
        "policy": arch,
        "prm": prm if inp.use_prm else None,
        "ref": arch if inp.with_reference else None,
        "prm_ref": prm_arch if inp.use_prm else None,
    }
    return {m: loaded[m] for m in MODEL_NAMES if loaded[m] is not None}


def stage_parts(arches: dict[str, ModelArch], inp: PlanInputs, stage: int) -> dict[str, int]:
    """Each part's bytes on one rank of ``stage`` for the models ``arches`` (see the module
    docstring and ``model_arches``)."""
    policy = arches["policy"]
    vocab = padded_vocab(policy, inp)
    params = {m: stage_params(a, inp.tp, inp.pp, stage, vocab) for m, a in arches.items()}
    parts = _model_parts(inp, params)
    parts.update(_activation_parts(arches, inp, stage, vocab))
    trained = [m for m in TRAINED if m in arches]
    largest = max(largest_tensor(arches[m], inp.tp, inp.pp, stage, vocab) for m in trained)
    adam_tmp = max(params[m] for m in trained) if inp.platform == "gpu" else largest
    parts["optimizer step temporaries"] = max(2 * 8 * largest, adam_tmp * inp.dtype_bytes)
    full_largest = largest_tensor(policy, 1, 1, 0, policy.vocab_size) * inp.dtype_bytes
    parts["weight-sync buffers"] = inp.bucket_bytes + full_largest
    parts["runtime"] = inp.runtime_bytes
    return parts


def _model_parts(inp: PlanInputs, params: dict[str, int]) -> dict[str, int]:
    parts: dict[str, int] = {}
    for model, count in params.items():
        parts[f"{model} weights"] = count * inp.dtype_bytes
        if model in TRAINED:
            parts[f"{model} grads"] = count * inp.dtype_bytes
            parts[f"{model} moments"] = 2 * count * inp.dtype_bytes
    return parts


def _activation_parts(
    arches: dict[str, ModelArch], inp: PlanInputs, stage: int, vocab: int
) -> dict[str, int]:
    a, b, s = inp.dtype_bytes, inp.micro_batch_size, inp.seq_len
    last = stage == inp.pp - 1

    def head_inputs(arch: ModelArch) -> int:  # final norm, output layer
        return 2 * b * s * arch.hidden_size * a if last else 0

    per_update = {"policy": inp.mini_batches, "prm": inp.prm_mini_batches}
    parts: dict[str, int] = {}
    for model in TRAINED:
        if model in arches:
            arch = arches[model]
            micro = inp.micro_batches(inp.samples_per_step // per_update[model])
            in_flight = min(inp.pp - stage, micro)  # 1F1B's warm-up depth on this stage
            layers = in_flight * (arch.num_layers // inp.pp) * layer_activation_bytes(arch, inp, b)
            parts[f"{model} update activations"] = layers + head_inputs(arch)
    # One forward-only pass at a time: the widest model's.
    parts["forward-only activations"] = max(
        layer_activation_bytes(arch, inp, b) + head_inputs(arch) for arch in arches.values()
    )
    v_local = vocab // inp.tp
    parts["logits (1 micro-batch, x2)"] = 2 * b * s * v_local * a if last else 0
    chunk = max(1, CHUNK_ELEMS // v_local) * v_local * 4
    parts["log-prob chunk"] = 3 * chunk if last and inp.platform == "cpu" else 0
    return parts


def _stage_plan(
    arches: dict[str, ModelArch], inp: PlanInputs, stage: int, vllm: VllmShare
) -> StagePlan:
    parts = stage_parts(arches, inp, stage)
    models = list(arches)

    def resident(phase: str) -> list[str]:
        return [m for m in models if m in PHASE_MODELS[phase]] if inp.offloads else models

    def phase(name: str, on: list[str], moments: bool = True, **extra: int) -> Phase:
        cols = dict.fromkeys(COLUMNS, 0)
        cols["weights"] = sum(parts[f"{m} weights"] for m in on)
        cols["moments"] = sum(parts[f"{m} moments"] for m in on if m in TRAINED) if moments else 0
        cols["runtime"] = parts["runtime"]
        cols.update(extra)
        return Phase(name, cols)

    asleep = 0 if inp.sleeps else vllm.total
    out_acts = parts["logits (1 micro-batch, x2)"] + parts["log-prob chunk"]
    sync = parts["weight-sync buffers"]
    # vLLM starts after the models are built and gets its first weight sync fully awake,
    # before the offloader ever ran; on a restart the moments are loaded by then.
    phases = [phase("startup", models, moments=False, vllm=vllm.total, sync=sync)]
    if inp.resumes:
        phases.append(phase("resume", models, vllm=vllm.total, sync=sync))
    phases += [
        phase("rollout", resident("rollout"), vllm=vllm.total),
        phase("logprobs", resident("logprobs"), vllm=asleep,
              activations=parts["forward-only activations"] + out_acts),
    ]  # fmt: skip
    for model in ("prm", "policy"):
        if model not in models:
            continue
        name, grads = f"{model}_update", parts[f"{model} grads"]
        acts = parts[f"{model} update activations"] + out_acts
        phases.append(phase(f"{name} fwd+bwd", resident(name), vllm=asleep, grads=grads,
                            activations=acts))  # fmt: skip
        phases.append(phase(f"{name} optimizer", resident(name), vllm=asleep, grads=grads,
                            optimizer=parts["optimizer step temporaries"]))  # fmt: skip
    # Sleeping vLLM wakes only its weights for the sync; its KV cache comes back at rollout.
    phases.append(phase("weight_sync", resident("weight_sync"), sync=sync,
                        vllm=vllm.weights if inp.sleeps else vllm.total))  # fmt: skip
    # Held-out evaluation restores every model first (so does a checkpoint save, which
    # needs no more than the logprobs phase).
    if inp.eval_rollouts:
        phases.append(phase("eval", models, vllm=vllm.total))
    return StagePlan(stage, parts, phases)
