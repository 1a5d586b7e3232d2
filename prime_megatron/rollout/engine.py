"""The one module that talks to vLLM: a colocated SPMD rollout engine.

Every torchrun rank builds one ``RolloutEngine`` (collective). vLLM runs in its
``external_launcher`` mode inside each rank's process and reuses the trainer's torch world;
``tensor_parallel_size`` consecutive ranks form one rollout replica (``placement.py``).
``generate`` is called by every rank with the same prompts; each replica samples its share
and the results are all-gathered, so every rank returns the same full batch.

Keep the engine alive for the whole job: tearing down an in-process vLLM engine destroys
the trainer's default process group (docs/cpu-platform.md).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from prime_megatron.distributed.init import init_distributed
from prime_megatron.rollout.config import RolloutConfig
from prime_megatron.rollout.placement import RolloutPlacement

# Per-request seeds are (call seed << 24) + sample index: distinct for < 2**24 samples a call.
_SAMPLE_BITS = 24
_SEED_MASK = 2**63 - 1
_SLEEP_TAGS = ("weights", "kv_cache")
_CPU_PREFILL_TOKENS = 2048  # vLLM's default token budget per step


@dataclass
class RolloutBatch:
    """K samples per prompt, grouped: samples of prompt p are rows p*K .. p*K + K - 1."""

    prompt_ids: list[list[int]]
    response_ids: list[list[int]]
    response_logprobs: list[list[float]]  # the sampler's log-prob of each response token
    truncated: list[bool]  # stopped by max_response_len (finish_reason == "length")
    group_index: list[int]  # prompt index of each sample
    weight_version: int

    def __len__(self) -> int:
        return len(self.response_ids)

    def padded_responses(self, pad_id: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Right-padded ``(ids [N, T] long, logprobs [N, T] fp32, mask [N, T] bool)``."""
        width = max((len(r) for r in self.response_ids), default=0)
        n = len(self.response_ids)
        ids = torch.full((n, width), pad_id, dtype=torch.long)
        logp = torch.zeros(n, width)
        mask = torch.zeros(n, width, dtype=torch.bool)
        for i, (toks, lps) in enumerate(
            zip(self.response_ids, self.response_logprobs, strict=True)
        ):
            ids[i, : len(toks)] = torch.tensor(toks, dtype=torch.long)
            logp[i, : len(lps)] = torch.tensor(lps)
            mask[i, : len(toks)] = True
        return ids, logp, mask


class RolloutEngine:
    """vLLM colocated with the trainer; see the module docstring for the rank layout."""

    def __init__(
        self, hf_dir: Path, cfg: RolloutConfig, seed: int = 0, stop_token_ids: Sequence[int] = ()
    ) -> None:
        cfg.validate()
        _, world = init_distributed()
        cfg.check_world(world)
        self.cfg = cfg
        self.seed = seed
        # Sampling stops on these besides the config's EOS (vLLM runs without a tokenizer):
        # the chat template's end of turn (``data.template.answer_end_ids``).
        self.stop_token_ids = list(stop_token_ids)
        self.placement = RolloutPlacement(world, dist.get_rank(), cfg.tensor_parallel_size)
        self.weight_version = 0
        self._calls = 0
        self._has_weights = cfg.load_format != "dummy"
        self._sleeping: set[str] = set()  # vLLM sleep-mode tags currently released (GPU)
        self.llm = _build_llm(Path(hf_dir), cfg, seed)

    # ---- generation -------------------------------------------------------------------

    def generate(
        self,
        prompt_ids: Sequence[Sequence[int]],
        samples_per_prompt: int,
        seed: int | None = None,
        temperature: float | None = None,
    ) -> RolloutBatch:
        """Collective: K samples for every prompt; every rank returns the same full batch.

        ``temperature`` overrides the config's for this call (0 = greedy, for evaluation;
        unlike ``greedy`` it stops at EOS and spreads prompts over the replicas).

        ``seed`` fixes the samples (same seed, weights and rollout layout -> same batch):
        sample j of prompt p gets its own vLLM seed derived from (seed, p * K + j), so it
        does not depend on which replica drew it. ``None`` draws a fresh, still
        reproducible, seed from the engine seed and a call counter.
        """
        if not self._has_weights:
            raise RuntimeError(
                "rollout engine was started with load_format='dummy' (random weights): "
                "sync the policy weights (prime_megatron.resharding.sync_weights) first"
            )
        self._check_prompts(prompt_ids, samples_per_prompt)
        self._wake_up()
        call_seed = seed if seed is not None else self.seed * 1_000_003 + self._calls
        self._calls += 1
        mine = self.placement.prompt_range(len(prompt_ids))
        temp = self.cfg.temperature if temperature is None else temperature
        local = self._generate_range(prompt_ids, mine, samples_per_prompt, call_seed, temp)
        samples = _all_gather_samples(local if self.placement.tp_rank == 0 else {})
        batch = _assemble_batch(prompt_ids, samples, samples_per_prompt, self.weight_version)
        if self.cfg.sleep_between_rollouts:
            self._sleep()
        return batch

    def _generate_range(
        self,
        prompt_ids: Sequence[Sequence[int]],
        indices: range,
        k: int,
        call_seed: int,
        temperature: float,
    ) -> dict[int, list[tuple[list[int], list[float], bool]]]:
        """{prompt index: K x (token ids, log-probs, truncated)} for this replica's prompts."""
        if not indices:
            return {}
        from vllm.inputs import TokensPrompt

        prompts = [TokensPrompt(prompt_token_ids=list(prompt_ids[p])) for p in indices]
        params = [
            self._sampling_params(k, _request_seed(call_seed, p * k), temperature) for p in indices
        ]
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        return {p: _samples_of(out) for p, out in zip(indices, outputs, strict=True)}

    def _sampling_params(self, n: int, seed: int, temperature: float):
        from vllm import SamplingParams

        return SamplingParams(
            n=n,
            temperature=temperature,
            top_p=self.cfg.top_p,
            max_tokens=self.cfg.max_response_len,
            logprobs=0,  # the sampled token's log-prob only
            seed=seed,  # vLLM gives sample j of the request seed + j
            stop_token_ids=self.stop_token_ids,
            detokenize=False,
        )

    def greedy(self, prompt_ids: Sequence[Sequence[int]], max_new_tokens: int) -> RolloutBatch:
        """Collective greedy continuation of each prompt (verification); EOS is ignored."""
        from vllm import SamplingParams

        self._wake_up()
        params = SamplingParams(
            temperature=0.0, max_tokens=max_new_tokens, logprobs=0, ignore_eos=True,
            detokenize=False,
        )  # fmt: skip
        from vllm.inputs import TokensPrompt

        prompts = [TokensPrompt(prompt_token_ids=list(p)) for p in prompt_ids]
        outs = self.llm.generate(prompts, params, use_tqdm=False)
        # Every replica runs all prompts: verification batches are small, and each replica
        # is checked this way.
        samples = {p: _samples_of(out) for p, out in enumerate(outs)}
        return _assemble_batch(prompt_ids, samples, 1, self.weight_version)

    def _check_prompts(self, prompt_ids: Sequence[Sequence[int]], k: int) -> None:
        if k < 1:
            raise ValueError(f"samples_per_prompt={k} is invalid: must be >= 1")
        for i, ids in enumerate(prompt_ids):
            if not 1 <= len(ids) <= self.cfg.max_prompt_len:
                raise ValueError(
                    f"prompt {i} has {len(ids)} tokens; rollout.max_prompt_len="
                    f"{self.cfg.max_prompt_len} (and at least 1 token) is allowed"
                )

    # ---- weights ----------------------------------------------------------------------

    def load_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Load full (unsharded) HF-named tensors into this rank's vLLM worker, in place.

        vLLM shards each tensor for its rollout TP rank and fuses q/k/v and gate/up itself.
        ``named_tensors`` may be a lazy iterator: the worker lives in this process and
        consumes it in order on every rank, so the iterator may run collectives (the weight
        sync gathers bucket by bucket while vLLM loads). Pass a whole sync in ONE call:
        vLLM moves every layer aside and back per call, and rebuilds a layer only from the
        tensors one call gave it, so all tensors of a layer (q/k/v weights and biases) must
        come in the same call.
        """
        self._wake_up(tags=("weights",))
        self.llm.collective_rpc(
            "reload_weights",
            kwargs={"weights_iterator": named_tensors, "is_checkpoint_format": True},
        )

    def restore_weight_version(self, saved: int) -> None:
        """Resume at a checkpoint whose weights were published as version ``saved``: the
        first sync after resuming re-publishes them, so it gets the same number again."""
        self.weight_version = saved - 1

    def finish_weight_update(self) -> int:
        """After the last ``load_weights`` of a sync: drop stale KV, bump the version."""
        self.llm.collective_rpc(_refresh_tied_layers)
        self.llm.reset_prefix_cache()
        self._has_weights = True
        self.weight_version += 1
        return self.weight_version

    # ---- GPU memory release (vLLM sleep mode; no-ops on CPU) ---------------------------

    def _sleep(self) -> None:
        if _on_gpu() and not self._sleeping:
            self.llm.sleep(level=1)  # weights to host memory, KV cache freed
            self._sleeping = set(_SLEEP_TAGS)

    def _wake_up(self, tags: Sequence[str] = _SLEEP_TAGS) -> None:
        # A sync needs only the weights back; the KV cache returns for the next generate.
        want = self._sleeping & set(tags)
        if want:
            self.llm.wake_up(tags=sorted(want))
            self._sleeping -= want


def _refresh_tied_layers(worker) -> int:
    """Re-process layers whose weight is tied to another layer's (a tied ``lm_head``).

    vLLM-CPU pre-packs each linear weight after loading, and an in-place reload re-packs
    only the layers it loaded: a tied ``lm_head`` (never loaded itself) would keep sampling
    from a packed copy of the OLD embedding. Runs inside the worker (``collective_rpc``).
    """
    seen: set[int] = set()
    refreshed = 0
    for module in worker.model_runner.get_model().modules():
        weight = module._parameters.get("weight") if hasattr(module, "_parameters") else None
        if weight is None:
            continue
        if id(weight) in seen and hasattr(module, "quant_method"):
            module.quant_method.process_weights_after_loading(module)
            refreshed += 1
        seen.add(id(weight))
    return refreshed


def _on_gpu() -> bool:
    return torch.cuda.is_available()


def _build_llm(hf_dir: Path, cfg: RolloutConfig, seed: int):
    # external_launcher needs in-process engines (deterministic scheduling on every rank).
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    # Thread pinning fights the trainer's threads (and other jobs) on shared CPU hosts.
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")
    from vllm import LLM

    kwargs: dict = {}
    if _on_gpu():
        kwargs["gpu_memory_utilization"] = cfg.gpu_memory_utilization
        kwargs["enable_sleep_mode"] = cfg.sleep_between_rollouts
    else:
        kwargs["kv_cache_memory_bytes"] = int(cfg.kv_cache_gib * 2**30)
        # A prompt prefilled in chunks has its first sampled token discarded and its seeded
        # generator rewound, which CPU generators cannot do ("CPU Generator does not use
        # offset"): prefill whole prompts only.
        kwargs["enable_chunked_prefill"] = False
        kwargs["max_num_batched_tokens"] = max(cfg.max_model_len, _CPU_PREFILL_TOKENS)
    eager = cfg.enforce_eager if cfg.enforce_eager is not None else not _on_gpu()
    return LLM(
        model=str(hf_dir),
        skip_tokenizer_init=True,  # prompts and responses are token ids
        tensor_parallel_size=cfg.tensor_parallel_size,
        distributed_executor_backend="external_launcher",
        dtype=cfg.dtype,
        seed=seed,
        max_model_len=cfg.max_model_len,
        enable_prefix_caching=cfg.enable_prefix_caching,
        logprobs_mode=cfg.logprobs_mode,
        load_format=cfg.load_format,
        enforce_eager=eager,
        **kwargs,
    )


def _request_seed(call_seed: int, first_sample: int) -> int:
    return ((call_seed << _SAMPLE_BITS) + first_sample) & _SEED_MASK


def _samples_of(output) -> list[tuple[list[int], list[float], bool]]:
    """One vLLM RequestOutput -> its samples in sample order."""
    samples = []
    for c in sorted(output.outputs, key=lambda c: c.index):
        tokens = list(c.token_ids)
        logps = [float(step[tok].logprob) for step, tok in zip(c.logprobs, tokens, strict=True)]
        samples.append((tokens, logps, c.finish_reason == "length"))
    return samples


def _all_gather_samples(local: dict) -> dict:
    """Merge every rank's {prompt index: samples}; TP-rank-0 of each replica contributes."""
    parts: list[dict] = [{} for _ in range(dist.get_world_size())]
    dist.all_gather_object(parts, local)
    merged: dict = {}
    for part in parts:
        merged.update(part)
    return merged


def _assemble_batch(
    prompt_ids: Sequence[Sequence[int]], samples: dict, k: int, weight_version: int
) -> RolloutBatch:
    batch = RolloutBatch([], [], [], [], [], weight_version)
    for p, prompt in enumerate(prompt_ids):
        if len(samples[p]) != k:
            raise RuntimeError(f"prompt {p}: vLLM returned {len(samples[p])} samples, wanted {k}")
        for tokens, logps, truncated in samples[p]:
            batch.prompt_ids.append(list(prompt))
            batch.response_ids.append(tokens)
            batch.response_logprobs.append(logps)
            batch.truncated.append(truncated)
            batch.group_index.append(p)
    return batch
