"""The phases of a PRIME step (``PhaseTimer`` names) and the models each computes with.

Kept free of torch: ``trainer/offload.py`` moves models by this table and
``planning/memory.py`` estimates each phase's device memory from it.
"""

# Phase -> the models it computes with. Unknown phases keep every model resident.
PHASE_MODELS: dict[str, tuple[str, ...]] = {
    "rollout": (),
    "logprobs": ("policy", "ref", "prm"),
    "prm_update": ("prm",),
    "policy_update": ("policy",),
    "weight_sync": ("policy",),
    "verify_sync": ("policy",),
    # The PRM and its reference re-score the probe set; the batch's part is host work.
    "step_credit": ("policy", "prm", "ref"),
}
MODEL_NAMES = ("policy", "prm", "ref")
