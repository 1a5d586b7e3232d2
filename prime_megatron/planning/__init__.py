"""Memory and step-time estimates for a training config, before any weights exist.

``params`` counts parameters per rank as the builder lays them out, ``memory`` turns a
config's numbers (``inputs.PlanInputs``) into per-rank parts and per-phase totals,
``flops`` into a rough step time; ``source`` finds the architecture. ``tools/plan.py``
only formats the result.
"""
