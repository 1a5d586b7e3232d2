"""Build Megatron ``GPTModel`` chunks for a ``ModelArch`` and a TP/PP(/VPP) layout.

Layer spec: Transformer-Engine when CUDA and TE are importable, Megatron's local spec
otherwise (CPU, or a GPU without TE, then without the fusions whose kernels TE provides).
The two name their norm weights differently; ``layer_spec_kind`` tells the weight mappings
which names to expect.

Vocab padding: the embedding and output layer hold ``padded_vocab_size`` (models/arch.py)
rows so that TP divides them; the extra rows are zero-initialised, never seen by users
(logits are cut back to ``vocab_size`` by callers and the mappings drop/add the rows).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from prime_megatron.distributed import cpu_platform
from prime_megatron.distributed.init import ParallelGroups
from prime_megatron.distributed.rank import compute_device
from prime_megatron.models.arch import ModelArch, padded_vocab_size


def te_available() -> bool:
    if not torch.cuda.is_available():
        return False
    try:
        import transformer_engine  # noqa: F401
    except ImportError:
        return False
    return True


def layer_spec_kind() -> str:
    """``"te"`` or ``"local"``: which Megatron layer spec this host builds."""
    return "te" if te_available() else "local"


def transformer_config(
    arch: ModelArch,
    parallel: ParallelGroups,
    params_dtype: torch.dtype,
    vpp: int | None = None,
    init_weights: bool = True,
):
    from megatron.core.transformer import TransformerConfig

    on_gpu = torch.cuda.is_available()
    # Fused softmax, fused RoPE and the persistent norm are TE/apex kernels: a GPU host without
    # TE builds the local spec unfused, or TransformerConfig rejects apply_rope_fusion and the
    # torch norm asserts on persist_layer_norm. Bias-activation/dropout fusions are Megatron's
    # own torch.compile'd functions and work on any GPU.
    te = te_available()
    return TransformerConfig(
        num_layers=arch.num_layers,
        hidden_size=arch.hidden_size,
        ffn_hidden_size=arch.ffn_hidden_size,
        num_attention_heads=arch.num_attention_heads,
        num_query_groups=arch.num_query_groups,
        kv_channels=arch.head_dim,
        normalization="RMSNorm",
        layernorm_epsilon=arch.norm_eps,
        gated_linear_unit=True,
        activation_func=F.silu,
        add_bias_linear=False,
        add_qkv_bias=arch.qkv_bias,
        hidden_dropout=0.0,
        attention_dropout=0.0,
        tensor_model_parallel_size=parallel.tp_size,
        pipeline_model_parallel_size=parallel.pp_size,
        virtual_pipeline_model_parallel_size=vpp,
        params_dtype=params_dtype,
        perform_initialization=init_weights,
        bf16=params_dtype == torch.bfloat16,
        fp16=params_dtype == torch.float16,
        pipeline_dtype=params_dtype,
        use_cpu_initialization=not on_gpu,
        bias_activation_fusion=on_gpu,
        masked_softmax_fusion=te,
        bias_dropout_fusion=on_gpu,
        apply_rope_fusion=te,
        gradient_accumulation_fusion=False,
        persist_layer_norm=te,
    )


def build_gpt_model(
    arch: ModelArch,
    parallel: ParallelGroups,
    *,
    params_dtype: torch.dtype = torch.float32,
    vpp: int | None = None,
    vp_stage: int | None = None,
    padded_vocab: int | None = None,
    init_weights: bool = True,
):
    """One ``GPTModel`` chunk for this rank (pipeline stage ``parallel.pp_rank``, chunk vp_stage).

    ``padded_vocab`` defaults to ``padded_vocab_size(arch.vocab_size, tp)``; a checkpoint that
    was padded differently passes its own size. ``init_weights=False`` skips the random
    initialisation when every weight is about to be loaded anyway.
    """
    from megatron.core.models.gpt import GPTModel
    from megatron.core.models.gpt.gpt_layer_specs import (
        get_gpt_layer_local_spec,
        get_gpt_layer_with_transformer_engine_spec,
    )

    arch.check_layout(parallel.tp_size, parallel.pp_size)
    padded_vocab = padded_vocab or padded_vocab_size(arch.vocab_size, parallel.tp_size)
    if padded_vocab % parallel.tp_size:
        raise ValueError(
            f"padded vocab size {padded_vocab} is not divisible by tensor_parallel="
            f"{parallel.tp_size}; re-convert the checkpoint with --tp {parallel.tp_size}"
        )
    config = transformer_config(arch, parallel, params_dtype, vpp, init_weights)
    if layer_spec_kind() == "te":
        spec = get_gpt_layer_with_transformer_engine_spec()
    else:
        spec = get_gpt_layer_local_spec(normalization="RMSNorm")
    from megatron.core.pipeline_parallel.utils import is_vp_first_stage, is_vp_last_stage

    pre = parallel.is_first_stage and is_vp_first_stage(vp_stage, vpp)
    post = parallel.is_last_stage and is_vp_last_stage(vp_stage, vpp)
    with cpu_platform.cuda_to_cpu():  # construction is where Megatron's literal CUDA sites are
        model = GPTModel(
            config=config,
            transformer_layer_spec=spec,
            vocab_size=padded_vocab,
            max_sequence_length=arch.max_position_embeddings,
            pre_process=pre,
            post_process=post,
            share_embeddings_and_output_weights=arch.tie_word_embeddings,
            position_embedding_type="rope",
            rotary_base=int(arch.rope_theta),
            rope_scaling=arch.rope_scaling == "llama3",
            rope_scaling_factor=arch.rope_scaling_factor,
            seq_len_interpolation_factor=(
                arch.rope_scaling_factor if arch.rope_scaling == "linear" else None
            ),
            vp_stage=vp_stage,
        )
    if not init_weights:
        restore_tp_attributes(model, config)
    if layer_spec_kind() == "local":
        # The local spec's torch norms are made on the default device in fp32 (Megatron-LM
        # moves and casts the model after building it); every other weight is already here.
        model = model.to(compute_device(), params_dtype)
    return model


def restore_tp_attributes(model, config) -> None:
    """Tag TP-sharded weights with ``tensor_model_parallel``/``partition_dim``/``_stride``.

    Megatron sets these only while initialising a weight, so a model built with
    ``perform_initialization=False`` lacks them; the weight sync and TP-aware grad norms
    read them. Column-parallel and vocab-parallel weights split dim 0 (a gated ``linear_fc1``
    with stride 2: each shard is [gate_r; up_r]), row-parallel weights dim 1.
    """
    from megatron.core.tensor_parallel.layers import (
        ColumnParallelLinear,
        RowParallelLinear,
        VocabParallelEmbedding,
        set_tensor_model_parallel_attributes,
    )

    for name, module in model.named_modules():
        weight = getattr(module, "weight", None)
        if weight is None or hasattr(weight, "tensor_model_parallel"):
            continue
        if isinstance(module, (ColumnParallelLinear, VocabParallelEmbedding)):
            gated_fc1 = name.endswith("mlp.linear_fc1") and config.gated_linear_unit
            set_tensor_model_parallel_attributes(weight, True, 0, 2 if gated_fc1 else 1)
        elif isinstance(module, RowParallelLinear):
            set_tensor_model_parallel_attributes(weight, True, 1, 1)
