"""Pre-flight checks of a user's own checkpoint and data before renting GPUs
(``tools/preflight.py``, docs/preflight.md).

One module per check, each returning a small result whose ``check()`` is its report line:
``round_trip`` (tokenizer and chat template), ``lengths`` (prompt lengths, measured by
``data/prompt_lengths.py``, which ``prepare_inputs`` also uses), ``gold`` (gold answers
against the verifiers), ``logits`` (HF vs Megatron vs vLLM on a reduced-depth copy of the
model, written by ``reduced_model``) and ``plan`` (the memory planner's verdict);
``report`` formats the lines.
"""
