"""Byte-level BPE tokenizers at real vocabulary sizes, built locally (there is no hub).

The vocabulary is the 150k-token byte-level BPE that ``mistral_common`` ships (its tekken
file: tiktoken-style ranks, token bytes in merge order). Ranks become a Hugging Face BPE
model: each token is spelled in byte-level characters (space ``Ġ``, newline ``Ċ``) and
its merge is the last pair BPE joins when it encodes the token with lower ranks only.

Two styles, each with its model family's special tokens, ids, pipeline and chat format:

* ``qwen2.5``: all 150,000 ranks (Qwen2.5's own BPE has 151,643), ``<|endoftext|>``
  ``<|im_start|>`` ``<|im_end|>`` at their real ids 151643-151645 (ids 150000-151642 are
  unused, like the embedding rows past 151665 of the real model), ChatML. transformers
  rebuilds the pipeline of any dir whose config.json says qwen2 (keeping vocabulary and
  merges), so the saved one is exactly that rebuild: Qwen2's split regex, NFC, byte level.
  NFC means text comes back NFC-normalised, as with the real tokenizer.
* ``llama3``: the first 128,000 ranks and 256 special tokens at 128000-128255, as in
  Llama 3 (named ones at their real ids, the rest reserved), the header chat format; the
  pipeline is saved as built and kept by transformers; ``encode`` prepends
  ``<|begin_of_text|>``. Any UTF-8 text round-trips exactly.
"""

from __future__ import annotations

import base64
import functools
import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers
from tokenizers import pre_tokenizers as pre
from transformers import PreTrainedTokenizerFast
from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX as QWEN2_SPLIT

TEKKEN_FILE = "tekken_240911.json"

# Llama 3's split: like Qwen2's, but digits go in runs of up to three.
LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

QWEN_CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if loop.first and message['role'] != 'system' %}"
    "{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

# Llama 3 trims each message and opens every turn with a role header.
LLAMA3_CHAT_TEMPLATE = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}"
    "{{- (message['content'] | trim) + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{%- endif %}"
)


@dataclass(frozen=True)
class BpeStyle:
    """How one model family's tokenizer looks around the shared BPE ranks."""

    bpe_tokens: int  # the vocabulary takes ranks 0 .. bpe_tokens - 1 (ids = ranks)
    specials: dict[str, int]  # special token -> id (past the BPE ids)
    split_pattern: str  # pre-tokenizer regex: BPE never merges across its pieces
    nfc: bool
    ignore_merges: bool  # a piece that is a whole token is taken as is (tiktoken's rule)
    bos: str | None
    eos: str
    pad: str | None
    chat_template: str


def _llama3_specials(first_id: int = 128000) -> dict[str, int]:
    named = {0: "<|begin_of_text|>", 1: "<|end_of_text|>", 6: "<|start_header_id|>",
             7: "<|end_header_id|>", 9: "<|eot_id|>"}  # fmt: skip
    reserved = iter(range(256))
    return {
        named.get(i) or f"<|reserved_special_token_{next(reserved)}|>": first_id + i
        for i in range(256)
    }


STYLES: dict[str, BpeStyle] = {
    "qwen2.5": BpeStyle(
        bpe_tokens=150000,
        specials={"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645},
        split_pattern=QWEN2_SPLIT, nfc=True, ignore_merges=False,
        bos=None, eos="<|im_end|>", pad="<|endoftext|>", chat_template=QWEN_CHAT_TEMPLATE,
    ),
    "llama3": BpeStyle(
        bpe_tokens=128000, specials=_llama3_specials(),
        split_pattern=LLAMA3_SPLIT, nfc=False, ignore_merges=True,
        bos="<|begin_of_text|>", eos="<|eot_id|>", pad=None, chat_template=LLAMA3_CHAT_TEMPLATE,
    ),
}  # fmt: skip


def build_bpe_tokenizer(style: str) -> PreTrainedTokenizerFast:
    """The ``style`` tokenizer (see STYLES and the module docstring). The first call in a
    process derives the merges from the ranks (~3 s on one core); later ones take ~1 s."""
    if style not in STYLES:
        raise ValueError(f"unknown tokenizer style {style!r}; known: {sorted(STYLES)}")
    spec = STYLES[style]
    vocab, merges = _bpe_tables()
    if not 256 <= spec.bpe_tokens <= len(vocab):
        raise ValueError(f"{style}: bpe_tokens={spec.bpe_tokens} outside 256..{len(vocab)}")
    vocab = {**dict(list(vocab.items())[: spec.bpe_tokens]), **spec.specials}
    core = Tokenizer(models.BPE(
        vocab=vocab, merges=merges[: spec.bpe_tokens - 256], ignore_merges=spec.ignore_merges,
        fuse_unk=False, byte_fallback=False,
    ))  # fmt: skip
    if spec.nfc:
        core.normalizer = normalizers.NFC()
    core.pre_tokenizer = pre.Sequence([
        pre.Split(Regex(spec.split_pattern), behavior="isolated"),
        pre.ByteLevel(add_prefix_space=False, use_regex=False),
    ])  # fmt: skip
    core.decoder = decoders.ByteLevel()
    core.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in spec.specials])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token=spec.bos, eos_token=spec.eos, pad_token=spec.pad,
        add_bos_token=spec.bos is not None, clean_up_tokenization_spaces=False,
    )  # fmt: skip
    tokenizer.chat_template = spec.chat_template
    return tokenizer


@functools.cache
def _bpe_tables() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """All tekken ranks as (byte-level vocab, merges); merge i makes token 256 + i."""
    tokens = tekken_tokens()
    rank_of = {token: rank for rank, token in enumerate(tokens)}
    vocab = {_spell(token): rank for rank, token in enumerate(tokens)}
    merges = [
        (_spell(left), _spell(right))
        for left, right in (_last_merge(t, rank_of, r) for r, t in enumerate(tokens[256:], 256))
    ]
    return vocab, merges


@functools.cache
def tekken_tokens() -> tuple[bytes, ...]:
    """mistral_common's BPE tokens in rank order; the first 256 are the single bytes."""
    try:
        path = resources.files("mistral_common") / "data" / TEKKEN_FILE
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError(
            "the BPE ranks come from mistral_common (a vLLM dependency): pip install mistral_common"
        ) from e
    entries = json.loads(path.read_text(encoding="utf-8"))["vocab"]
    if [e["rank"] for e in entries] != list(range(len(entries))):
        raise ValueError(f"{path}: ranks are not 0..{len(entries) - 1} in order")
    tokens = tuple(base64.b64decode(e["token_bytes"]) for e in entries)
    if sorted(tokens[:256]) != [bytes([b]) for b in range(256)]:
        raise ValueError(f"{path}: ranks 0-255 are not the 256 single bytes")
    return tokens


def _last_merge(token: bytes, rank_of: dict[bytes, int], rank: int) -> tuple[bytes, bytes]:
    """The two parts BPE joins last when it builds ``token`` from ranks below ``rank``."""
    parts = [token[i : i + 1] for i in range(len(token))]
    while len(parts) > 2:
        joined = [rank_of.get(a + b, rank) for a, b in itertools.pairwise(parts)]
        best = min(range(len(joined)), key=joined.__getitem__)
        if joined[best] >= rank:
            raise ValueError(f"rank {rank} ({token!r}) cannot be built from lower ranks")
        parts[best : best + 2] = [parts[best] + parts[best + 1]]
    return parts[0], parts[1]


def _byte_chars() -> tuple[str, ...]:
    """The character byte-level BPE spells each byte with: printable Latin-1 bytes are
    themselves, the other 68 take code points 256, 257, ... in byte order."""
    printable = {*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)}
    shifted = iter(range(256, 512))
    return tuple(chr(b) if b in printable else chr(next(shifted)) for b in range(256))


BYTE_CHARS = _byte_chars()


def _spell(token: Sequence[int]) -> str:
    return "".join(BYTE_CHARS[b] for b in token)
