"""A tiny character-level Hugging Face tokenizer for the synthetic arithmetic task.

Built locally (no hub), one token per character, so encode/decode round-trips task text
exactly. Saved with ``save_pretrained`` it loads with ``AutoTokenizer.from_pretrained(dir)``
and in vLLM like any fast tokenizer.
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


def build_char_tokenizer(alphabet: str = TASK_ALPHABET) -> PreTrainedTokenizerFast:
    """One token per character of ``alphabet`` plus pad/bos/eos/unk (ids 0-3).

    Characters outside the alphabet encode to ``<unk>``. ``add_special_tokens`` adds
    nothing: the chat template places BOS/EOS, so raw text round-trips exactly.
    """
    chars = list(dict.fromkeys(alphabet))  # de-duplicate, keep order -> stable ids
    vocab = {tok: i for i, tok in enumerate([*SPECIAL_TOKENS, *chars])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    # [\s\S] rather than "." so the newline is a character like any other.
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    core.decoder = decoders.Fuse()
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
