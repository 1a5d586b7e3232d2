"""Evidence about PRIME itself: does it beat outcome-only RLOO on the synthetic task, and do
its implicit rewards locate the wrong step?

Pure analysis functions (``stats``, ``metrics``, ``samples``, ``credit``, ``efficiency``)
plus the run launcher and file readers the two benchmarks share (``runs``):
``benchmarks/sample_efficiency.py`` and ``benchmarks/step_credit.py``; ``provenance`` gives
every benchmark's JSON line its commit, date, machine and configuration.
"""
