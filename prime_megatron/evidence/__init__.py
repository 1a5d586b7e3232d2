"""Evidence for issue 7: does PRIME beat outcome-only RLOO on the synthetic task, and do its
implicit rewards locate the wrong step?

Pure analysis functions (``stats``, ``metrics``, ``samples``, ``credit``, ``efficiency``)
plus the run launcher and file readers the two benchmarks share (``runs``):
``benchmarks/sample_efficiency.py`` and ``benchmarks/step_credit.py``.
"""
