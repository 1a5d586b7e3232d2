"""Check 5: the memory planner's verdict for the job on ``gpus`` devices of ``gpu_mem_gb``
each (prime_megatron/planning/; ``tools/plan.py`` prints the whole breakdown)."""

from __future__ import annotations

from dataclasses import dataclass

from prime_megatron.planning.inputs import GIB, plan_inputs
from prime_megatron.planning.memory import plan_memory
from prime_megatron.planning.source import resolve_model, resolve_prm_model
from prime_megatron.preflight.report import FAIL, PASS, Check
from prime_megatron.trainer.config import TrainConfig

TITLE = "memory plan"


@dataclass(frozen=True)
class PlanVerdict:
    gpus: int
    fits: bool
    peak_bytes: int
    device_bytes: int
    peak_phase: str  # the phase at the peak, with its pipeline stage
    kv_sequences: int  # full-length sequences vLLM's KV cache holds at once

    def check(self) -> Check:
        verdict = "FITS" if self.fits else "DOES NOT FIT"
        summary = (
            f"{verdict} on {self.gpus} x {self.device_bytes / GIB:g} GiB: peak "
            f"{self.peak_bytes / GIB:.2f} GiB per rank "
            f"({self.peak_bytes / self.device_bytes:.0%}) in {self.peak_phase}"
        )
        kv = f"vLLM's KV cache holds {self.kv_sequences} full-length sequences at once"
        if self.kv_sequences < 1:
            kv = "vLLM's KV cache cannot hold one full-length sequence"
        details = (kv, "the breakdown by part and phase: tools/plan.py with the same arguments")
        return Check(TITLE, PASS if self.fits else FAIL, summary, details)


def plan_verdict(cfg: TrainConfig, gpus: int, gpu_mem_gb: float) -> PlanVerdict:
    """The plan of a validated config on GPUs (``tools/plan.py``'s defaults otherwise)."""
    arch, vocab, _ = resolve_model(cfg)
    inputs = plan_inputs(cfg, gpus, gpu_mem_gb, "gpu", vocab)
    plan = plan_memory(arch, inputs, resolve_prm_model(cfg))
    stage = max(plan.stages, key=lambda s: s.peak.total)
    return PlanVerdict(
        gpus, plan.fits, plan.peak_bytes, plan.inputs.device_bytes,
        f"phase {stage.peak.name!r} (stage {stage.stage})", plan.vllm.sequences,
    )  # fmt: skip
