"""Parameter counts of the Megatron ``GPTModel`` the builder makes for a ``ModelArch``.

Counted per rank, as ``prime_megatron/models/builder.py`` lays the model out: the
embedding sits on the first pipeline stage and the final norm and (untied) output layer
on the last; column/row-parallel weights and their biases are split over TP, RMSNorm
weights are replicated on every TP rank; the vocabulary rows are padded (``padded_vocab``).
RoPE has no parameters (its frequencies are a buffer).
"""

from __future__ import annotations

from prime_megatron.models.arch import ModelArch


def qkv_width(arch: ModelArch) -> int:
    """Output features of the fused q/k/v projection (GQA: the k/v heads are the groups)."""
    return (arch.num_attention_heads + 2 * arch.num_query_groups) * arch.head_dim


def attention_params(arch: ModelArch, tp: int) -> int:
    """q/k/v (with Qwen2's biases) and the output projection of one layer, one TP rank."""
    qkv = qkv_width(arch) * arch.hidden_size + (qkv_width(arch) if arch.qkv_bias else 0)
    out = arch.num_attention_heads * arch.head_dim * arch.hidden_size
    return (qkv + out) // tp


def mlp_params(arch: ModelArch, tp: int) -> int:
    """SwiGLU: fc1 holds [gate; up] (2 x ffn rows), fc2 maps ffn back to hidden."""
    return 3 * arch.ffn_hidden_size * arch.hidden_size // tp


def layer_params(arch: ModelArch, tp: int) -> int:
    """One transformer layer on one TP rank: its two RMSNorm weights are not split."""
    return attention_params(arch, tp) + mlp_params(arch, tp) + 2 * arch.hidden_size


def check_pipeline(arch: ModelArch, pp: int) -> None:
    """The trainer refuses tied embeddings under PP (trainer/setup.py ``build_models``)."""
    arch.check_layout(1, pp)
    if arch.tie_word_embeddings and pp > 1:
        raise ValueError(
            "tied embeddings under pipeline parallelism are not supported by the trainer"
        )


def stage_params(arch: ModelArch, tp: int, pp: int, stage: int, padded_vocab: int) -> int:
    """Parameters one rank of pipeline stage ``stage`` holds (each TP rank holds the same)."""
    check_pipeline(arch, pp)
    vocab_rows = padded_vocab // tp * arch.hidden_size
    count = arch.num_layers // pp * layer_params(arch, tp)
    if stage == 0:
        count += vocab_rows  # word embeddings
    if stage == pp - 1:
        count += arch.hidden_size + (0 if arch.tie_word_embeddings else vocab_rows)
    return count


def total_params(arch: ModelArch) -> int:
    """The whole model, unsharded and unpadded: what Hugging Face counts."""
    return stage_params(arch, 1, 1, 0, arch.vocab_size)


def largest_tensor(arch: ModelArch, tp: int, pp: int, stage: int, padded_vocab: int) -> int:
    """Elements of the biggest single parameter on that rank (what per-tensor temporaries
    such as the gradient norm's fp64 square are as big as)."""
    sizes = [
        2 * arch.ffn_hidden_size * arch.hidden_size // tp,
        qkv_width(arch) * arch.hidden_size // tp,
    ]
    if stage == 0 or (stage == pp - 1 and not arch.tie_word_embeddings):
        sizes.append(padded_vocab // tp * arch.hidden_size)
    return max(sizes)


def matmul_params(arch: ModelArch) -> int:
    """Weights that multiply every token (layers' linears and the output layer): the "N"
    of the 2N FLOPs per token. Embedding lookups, norms and biases cost no matmul."""
    per_layer = attention_params(arch, 1) - (qkv_width(arch) if arch.qkv_bias else 0)
    return arch.num_layers * (per_layer + mlp_params(arch, 1)) + arch.vocab_size * arch.hidden_size
