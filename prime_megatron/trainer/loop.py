"""The PRIME training job: set up, evaluate, loop over steps, checkpoint, export.

One step = collect (rollout, verify, filter) -> learn (log-probs, implicit rewards, PRM
update, advantages, PPO) -> weight sync to vLLM. Every rank runs this same program.
"""

from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from prime_megatron.checkpoint.megatron_io import ModelCheckpointMeta
from prime_megatron.data.dataset import PromptDataset
from prime_megatron.data.sampler import PromptSampler
from prime_megatron.data.template import answer_end_ids
from prime_megatron.distributed.init import ParallelGroups, initialize_parallel, seed_all
from prime_megatron.distributed.rank import compute_device, is_rank0, log0
from prime_megatron.evidence.metrics import tail_means
from prime_megatron.evidence.prm_learning import PREFIXES as PRM_PREFIXES
from prime_megatron.passes.batch import Group, SampleBatch
from prime_megatron.resharding import sync_weights, verify_weight_sync
from prime_megatron.rewards.manager import RewardManager
from prime_megatron.rollout.engine import RolloutEngine
from prime_megatron.run_layout import RunLayout
from prime_megatron.trainer.collect import GroupCollector, PromptEncoder
from prime_megatron.trainer.config import TrainConfig
from prime_megatron.trainer.credit import (
    SFTSampleProbe,
    batch_credit,
    oracle_process_rewards,
    probe_prompts,
    sample_rows,
)
from prime_megatron.trainer.evaluate import evaluate, paired_change, write_responses
from prime_megatron.trainer.inputs import ResolvedInputs, write_run_record
from prime_megatron.trainer.metrics import MetricsLogger
from prime_megatron.trainer.models import Models
from prime_megatron.trainer.offload import Offloader
from prime_megatron.trainer.phases import Phase, PhaseTimer
from prime_megatron.trainer.resume import collector_state, load_checkpoint, save_checkpoint
from prime_megatron.trainer.setup import (
    build_models,
    ensure_start_checkpoint,
    rollout_model_dir,
)
from prime_megatron.trainer.update import (
    ROLLOUT_GAP,
    UpdateSettings,
    learn,
    rollout_logp_agrees,
)


class Trainer:
    """A run of a validated config (never changed here) on inputs ``prepare_inputs`` made."""

    cfg: TrainConfig
    inputs: ResolvedInputs
    layout: RunLayout
    parallel: ParallelGroups
    tokenizer: Any
    encode: PromptEncoder
    heldout: PromptDataset | None
    models: Models
    meta: ModelCheckpointMeta
    offloader: Offloader | None  # model.offload_idle
    vocab: int
    engine: RolloutEngine
    rewards: RewardManager | None  # rank 0 only
    collector: GroupCollector
    logger: MetricsLogger | None  # rank 0 only
    step: int  # RL steps done
    probe: SFTSampleProbe | None  # drawn in train() (step credit only)
    rollout_logp: bool  # the engine's log-probs stand in for the trainer's (algo.sampling_logp)
    prm_replay: deque[SampleBatch]  # the last algo.prm_replay_steps batches, for the PRM
    # This process's steps' PRM/credit metrics, for the summary (not checkpointed: after a
    # resume the summary covers the resumed part).
    _history: list[dict]
    _eval_before: dict[str, list[float]]  # metric prefix -> per-prompt scores
    seconds: dict[str, float]  # wall-clock of the job's parts: sft, rl, eval (summary)

    def __init__(self, cfg: TrainConfig, inputs: ResolvedInputs) -> None:
        self.cfg, self.inputs = cfg, inputs
        self.layout = RunLayout(Path(cfg.run.output_dir))
        self.parallel = initialize_parallel(
            cfg.parallel.tensor_parallel, cfg.parallel.pipeline_parallel
        )
        seed_all(cfg.run.seed, self.parallel)
        if is_rank0():
            write_run_record(self.layout, cfg, inputs)
        dist.barrier()
        self.seconds = {}
        self._setup_data_and_models()
        self.step = 0
        self.prm_replay = deque(maxlen=cfg.algo.prm_replay_steps if cfg.use_prm else 0)
        self._history = []
        self.probe = None
        self.rollout_logp = cfg.algo.sampling_logp == "rollout"
        self._resume()
        self._sync()

    # ---- setup ----------------------------------------------------------------------

    def _setup_data_and_models(self) -> None:
        cfg, inputs = self.cfg, self.inputs
        self.tokenizer, self.encode, self.heldout = inputs.tokenizer, inputs.encode, inputs.heldout
        start = inputs.start
        began = time.perf_counter()
        starts = [s for s in (start, inputs.prm_start) if s is not None]
        trained = [ensure_start_checkpoint(s, cfg, self.parallel, self.tokenizer, self.encode)
                   for s in starts]  # fmt: skip
        if any(trained):
            self.seconds["sft"] = time.perf_counter() - began
        self.models, self.meta, self.prm_meta = build_models(
            cfg, self.parallel, start, inputs.prm_start
        )
        self.offloader = (
            Offloader(self.models, compute_device(), torch.device("cpu"))
            if cfg.model.offload_idle
            else None
        )
        self.vocab = self.meta.arch.vocab_size
        rollout_dir = rollout_model_dir(
            self.layout.rollout_model, start.side_files, self.meta.hf_config, self.tokenizer
        )
        self.engine = RolloutEngine(rollout_dir, cfg.rollout, cfg.run.seed,
                                    answer_end_ids(self.encode.renderer))  # fmt: skip
        self.rewards = RewardManager(cfg.rewards) if is_rank0() else None
        self._eval_before = {}
        sampler = PromptSampler(len(inputs.train), cfg.data.seed, cfg.data.shuffle)
        self.collector = GroupCollector(
            inputs.train, sampler, self.encode, self.tokenizer, self.engine, self.rewards,
            cfg.algo, cfg.batch.prompts_per_step, cfg.batch.samples_per_prompt,
        )  # fmt: skip
        self.logger = (
            MetricsLogger(
                self.layout, cfg.run.steps, cfg.run.tensorboard, cfg.run.wandb_project, asdict(cfg)
            )
            if is_rank0()
            else None
        )

    def _trainable(self) -> tuple[dict, dict]:
        models = {"policy": self.models.policy}
        optimizers = {"policy": self.models.policy_opt}
        if self.models.prm is not None:
            models["prm"], optimizers["prm"] = self.models.prm, self.models.prm_opt
        return models, optimizers

    def _layout(self) -> dict:
        parallel = self.parallel
        return {"world": dist.get_world_size(), "tp": parallel.tp_size, "pp": parallel.pp_size}

    def _resume(self) -> None:
        path = self.inputs.resume
        if path is None:
            return
        models, optimizers = self._trainable()
        state, exact, rank_state = load_checkpoint(path, models, optimizers, self._layout())
        saved_collector = collector_state(state, path)
        self.step = state["step"]
        self.engine.restore_weight_version(state["weight_version"])
        self.collector.load_state_dict(saved_collector)
        self.prm_replay.extend(SampleBatch.from_state(b) for b in rank_state.get("prm_replay", []))
        log0(f"resumed from {path} at step {self.step}" + ("" if exact else
             " (different layout: optimizer moments, RNG and PRM replay restarted)"))  # fmt: skip

    def _save(self) -> None:
        if self.offloader is not None:
            self.offloader.restore()
        models, optimizers = self._trainable()
        state = {
            "step": self.step,
            "collector": self.collector.state_dict(),
            "layout": self._layout(),
            "weight_version": self.engine.weight_version,
        }
        path = save_checkpoint(
            self.layout.checkpoints,
            self.step,
            models,
            optimizers,
            state,
            self.cfg.run.keep_last,
            rank_state={"prm_replay": [b.to_state() for b in self.prm_replay]},
        )
        log0(f"saved {path}")

    def _sync(self) -> dict:
        bucket = self.cfg.rollout.bucket_bytes
        return sync_weights(self.models.policy, self.parallel, self.meta.arch, self.engine, bucket)

    # ---- run ------------------------------------------------------------------------

    def evaluate(self, name: str) -> dict | None:
        """Greedy (and, with ``run.eval_samples``, sampled) accuracy on the held-out rows;
        after RL also the paired per-prompt change against the ``eval_before`` scores."""
        if self.heldout is None or self.cfg.run.eval_prompts == 0:
            return None
        began = time.perf_counter()
        rows = list(self.heldout)[: self.cfg.run.eval_prompts]
        args = (self.engine, rows, self.encode, self.tokenizer, self.rewards)
        runs = {"": evaluate(*args, seed=self.cfg.run.seed)}
        if self.cfg.run.eval_samples:
            runs["sampled_"] = evaluate(
                *args, samples=self.cfg.run.eval_samples, seed=self.cfg.run.seed
            )
        result = {}
        for prefix, run in runs.items():
            result.update({prefix + k: v for k, v in run.metrics.items() if k != "prompts"})
            if prefix in self._eval_before:
                change, ci95 = paired_change(self._eval_before[prefix], run.per_prompt)
                result[f"{prefix}pass@1_change"] = change
                result[f"{prefix}pass@1_change_ci95"] = ci95
        result["prompts"] = runs[""].metrics["prompts"]
        if is_rank0():  # eval_after.jsonl (greedy), eval_after_sampled.jsonl
            for prefix, run in runs.items():
                file = f"{name}_{prefix.rstrip('_')}" if prefix else name
                write_responses(self.layout.eval_responses(file), run)
        if name == "eval_before":
            self._eval_before = {prefix: run.per_prompt for prefix, run in runs.items()}
        if self.logger is not None:
            self.logger.event(
                name, {"step": self.step, **{k: round(v, 4) for k, v in result.items()}}
            )
        self.seconds["eval"] = self.seconds.get("eval", 0.0) + time.perf_counter() - began
        return result

    def train(self) -> dict:
        cfg = self.cfg
        settings = UpdateSettings(
            algo=cfg.algo, use_prm=cfg.use_prm, mini_batches=cfg.batch.mini_batches_per_step,
            micro_batching=cfg.batch.micro_batching, temperature=cfg.rollout.temperature,
            vocab_size=self.vocab, pad_id=self.tokenizer.pad_token_id,
            prm_mini_batches=cfg.batch.prm_mini_batches_per_step,
        )  # fmt: skip
        before = self.evaluate("eval_before") if self.step == 0 else None
        self.probe = self._draw_probe(self.collector.dataset)
        if self.logger is not None:
            self.logger.begin(self.step)
        stop_at = (
            cfg.run.steps
            if not cfg.run.stop_after_steps
            else min(cfg.run.steps, cfg.run.stop_after_steps)
        )
        began = time.perf_counter()
        while self.step < stop_at:
            metrics = self._one_step(settings)
            self.step += 1
            self._history.append({"step": self.step, **_learning_metrics(metrics)})
            if self.logger is not None and self.step % cfg.run.log_every == 0:
                self.logger.log(self.step, metrics)
            if (
                cfg.run.save_every
                and self.step % cfg.run.save_every == 0
                and self.step < cfg.run.steps
            ):
                self._save()
        if self.step < cfg.run.steps:  # stopped early on purpose (testing aid): like a kill
            return {"finished": False, "before": before, "after": None}
        self._save()
        self.seconds["rl"] = time.perf_counter() - began
        after = self.evaluate("eval_after")
        prm = tail_means(self._history, LEARNING_PREFIXES)
        return {"finished": True, "before": before, "after": after, "prm": prm,
                "seconds": dict(self.seconds), "rl_steps": len(self._history)}  # fmt: skip

    def _one_step(self, settings: UpdateSettings) -> dict[str, float]:
        timer = PhaseTimer(self.offloader.enter if self.offloader is not None else None)
        start = time.perf_counter()
        with timer(Phase.ROLLOUT):
            prompt_groups, metrics = self.collector.collect(
                self.step, seed=self.cfg.run.seed * 100_003 + self.step
            )
        if prompt_groups:
            batch = SampleBatch.from_groups(prompt_groups, self.tokenizer.pad_token_id)
            update_policy = self.step >= self.cfg.algo.prm_warmup_steps
            oracle = None
            if self.cfg.algo.process_reward_source == "oracle":
                oracle = oracle_process_rewards(prompt_groups, batch, self.tokenizer)
            result = learn(self.models, self.parallel, batch, settings, timer, update_policy,
                           oracle, tuple(self.prm_replay), self.rollout_logp)  # fmt: skip
            self._check_rollout_logp(result.metrics)
            if self.prm_replay.maxlen:
                self.prm_replay.append(batch.with_extras(ref_logp=result.prm_ref_logp))
            metrics.update(result.metrics)
            metrics["train/policy_updated"] = float(update_policy)
            self._maybe_dump_samples(prompt_groups, batch, result.token_q)
            metrics.update(self._maybe_step_credit(prompt_groups, batch, result, timer))
            if update_policy:  # during the PRM warm-up vLLM already holds the policy
                with timer(Phase.WEIGHT_SYNC):
                    metrics.update({f"sync/{k}": float(v) for k, v in self._sync().items()})
            metrics["time/tokens_per_s"] = float(batch.mask.sum()) / (time.perf_counter() - start)
        prompts = [group.prompt_ids for group in prompt_groups]
        metrics.update(self._maybe_verify_sync(prompts, timer))
        metrics.update(timer.metrics())
        metrics["time/step"] = time.perf_counter() - start
        return metrics

    def _check_rollout_logp(self, metrics: dict[str, float]) -> None:
        """Stop standing the engine's log-probs in for the trainer's once their measured gap
        exceeds ``algo.sampling_logp_tolerance`` (``algo.sampling_logp``)."""
        tolerance = self.cfg.algo.sampling_logp_tolerance
        if self.rollout_logp and not rollout_logp_agrees(metrics, tolerance):
            gap = metrics[ROLLOUT_GAP]
            self.rollout_logp = False
            log0(f"warning: step {self.step + 1}: the engine's log-probs differ from the "
                 f"trainer's by {gap:.3g} nats per token on average (algo.sampling_logp_"
                 f"tolerance={tolerance}); the sampling policy's log-probs come from a policy "
                 "forward from now on")  # fmt: skip

    def _maybe_dump_samples(self, prompt_groups: list[Group], batch: SampleBatch, token_q) -> None:
        """Every ``run.dump_samples_every`` steps (rank 0): the step's samples with their
        per-token implicit rewards, for offline analysis (benchmarks/step_credit.py)."""
        every = self.cfg.run.dump_samples_every
        if not every or (self.step + 1) % every or not is_rank0():
            return
        self.layout.samples.mkdir(exist_ok=True)
        rows = sample_rows(prompt_groups, batch, token_q, self.step + 1)
        lines = "".join(json.dumps(r) + "\n" for r in rows)
        self.layout.sample_dump(self.step + 1).write_text(lines)

    def _maybe_step_credit(
        self, prompt_groups: list[Group], batch: SampleBatch, result, timer: PhaseTimer
    ) -> dict[str, float]:
        """Every ``run.step_credit_every`` steps: the PRM's first-wrong-step AUROC on this
        batch and on the SFT-sample probe, with their baselines (trainer/credit.py)."""
        every = self.cfg.run.step_credit_every
        if not every or result.token_q is None or (self.step + 1) % every:
            return {}
        with timer(Phase.STEP_CREDIT):
            logps = {"policy": result.policy_logp, "sft": result.sft_logp}
            out = batch_credit(
                prompt_groups, batch, result.token_q, logps, self.tokenizer, self.step + 1
            )
            if self.probe is not None:
                cfg = self.cfg
                out.update(self.probe.measure(
                    self.models, self.parallel, cfg.algo.prm_reference,
                    cfg.batch.micro_batch_size, cfg.rollout.temperature, self.tokenizer,
                    self.step + 1, self.vocab,
                ))  # fmt: skip
            return out

    def _draw_probe(self, train: PromptDataset) -> SFTSampleProbe | None:
        """Before the first RL step (the engine holds the SFT weights): the probe set."""
        cfg = self.cfg
        if not (cfg.run.step_credit_every and cfg.use_prm and self.step == 0):
            return None
        prompts = probe_prompts(train, self.encode, PROBE_PROMPTS, cfg.run.seed)
        k = cfg.batch.samples_per_prompt
        return SFTSampleProbe.draw(self.engine, prompts, k, self.tokenizer.pad_token_id)

    def _maybe_verify_sync(self, prompts: list[list[int]], timer: PhaseTimer) -> dict[str, float]:
        """Every ``run.verify_sync_every`` steps: vLLM greedy == Megatron greedy after the sync."""
        every = self.cfg.run.verify_sync_every
        if not every or not prompts or (self.step + 1) % every:
            return {}
        with timer(Phase.VERIFY_SYNC):
            report = verify_weight_sync(self.models.policy, self.parallel, self.engine, prompts[:4],
                                        self.vocab, max_new_tokens=16, seed=self.step)  # fmt: skip
        return {
            "verify/greedy_match": float(report["greedy_match"]),
            "verify/greedy_logp_abs_max": report["greedy_logp"]["abs_max"],
            "verify/sampled_logp_abs_max": report["sampled_logp"]["abs_max"],
        }

    def close(self) -> None:
        if self.logger is not None:
            self.logger.close()
        if self.rewards is not None:
            self.rewards.close()


LEARNING_PREFIXES = (*PRM_PREFIXES, "rollout/accuracy")  # what the summary averages
PROBE_PROMPTS = 64  # prompts of the SFT-sample probe (x samples_per_prompt samples)


def _learning_metrics(metrics: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if k.startswith(LEARNING_PREFIXES)}
