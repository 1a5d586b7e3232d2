"""A tiny character-level Hugging Face tokenizer for the synthetic arithmetic task.

Built locally (no hub), one token per character, so encode/decode round-trips task text
exactly. Saved with ``save_pretrained`` it loads with ``AutoTokenizer.from_pretrained(dir)``
and in vLLM like any fast tokenizer, also next to the model's Qwen2 ``config.json``: there
transformers (5.x) replaces the saved pipeline with Qwen2's byte-level BPE and keeps only
the vocabulary, so the vocabulary spells characters in byte-level form (newline ``Ċ``,
space ``Ġ``) and both pipelines give the same ids; with plain characters the Qwen2 one
silently dropped every newline.
"""

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

# Everything the arithmetic chain task writes: operands, operators, one step per line, and
# the \boxed{...} final answer. A space is included so plain-template prompts can use it.
TASK_ALPHABET = "0123456789+-=\n\\boxed{} "

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK)

# User turns end in a newline (the model answers on the next line); assistant turns end
# with EOS so SFT teaches the model to stop. A system turn is rendered like a user turn.
CHAR_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}{{ message['content'] }}{{ eos_token }}"
    "{% else %}{{ message['content'] }}{{ '\n' }}{% endif %}"
    "{% endfor %}"
)


_BYTE_LEVEL = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)


def _byte_level(char: str) -> str:
    """``char`` as byte-level BPE vocabularies spell it (printable ASCII stays itself)."""
    return "".join(piece for piece, _ in _BYTE_LEVEL.pre_tokenize_str(char))


def build_char_tokenizer(alphabet: str = TASK_ALPHABET) -> PreTrainedTokenizerFast:
    """One token per character of ``alphabet`` plus pad/bos/eos/unk (ids 0-3).

    Characters outside the alphabet encode to ``<unk>``. ``add_special_tokens`` adds
    nothing: the chat template places BOS/EOS, so raw text round-trips exactly.
    """
    chars = list(dict.fromkeys(alphabet))  # de-duplicate, keep order -> stable ids
    vocab = {tok: i for i, tok in enumerate([*SPECIAL_TOKENS, *map(_byte_level, chars)])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    # [\s\S] rather than "." so the newline is a character like any other.
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated"), _BYTE_LEVEL]
    )
    core.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token=PAD,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = CHAR_CHAT_TEMPLATE
    return tokenizer
