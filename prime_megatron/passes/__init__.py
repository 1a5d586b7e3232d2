"""Megatron passes over rollout samples: the padded ``SampleBatch`` and ``run_pass``.

Below the trainer (and ``resharding``, whose weight-sync check runs the same passes), above
``models`` and ``kernels``.
"""
