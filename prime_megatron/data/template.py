"""Turn a row's chat messages into the prompt text the policy continues."""

from collections.abc import Sequence

from prime_megatron.config.errors import ConfigError


class PromptRenderer:
    """``chat``: the tokenizer's chat template with a generation prompt. ``plain``:
    ``plain_template`` with ``{prompt}`` = the last user message and ``{system}`` = the
    system message (or "")."""

    def __init__(self, prompt_format: str, tokenizer=None, plain_template: str = "{prompt}"):
        if prompt_format == "chat" and not getattr(tokenizer, "chat_template", None):
            raise ConfigError(
                "data.prompt_format='chat' needs a tokenizer with a chat template; "
                "this one has none: set data.prompt_format=plain (and data.plain_template)"
            )
        self.prompt_format = prompt_format
        self.tokenizer = tokenizer
        self.plain_template = plain_template

    def __call__(self, messages: Sequence[dict]) -> str:
        if self.prompt_format == "chat":
            return self.tokenizer.apply_chat_template(
                list(messages), tokenize=False, add_generation_prompt=True
            )
        return self.plain_template.format(
            prompt=_last(messages, "user"), system=_last(messages, "system")
        )


# An assistant message the chat template is rendered around to find what follows a turn.
_PROBE = "Probe answer 7."


def answer_end_ids(renderer: PromptRenderer) -> list[int]:
    """Token ids that end an answer: the tokenizer's EOS and, with the chat format, the
    special token the template writes right after an assistant turn (``<|im_end|>``,
    ``<|eot_id|>``). Rollouts must stop on it: a chat model ends its turn with it, which is
    often not the EOS in its config (base checkpoints name ``<|endoftext|>``)."""
    tokenizer = renderer.tokenizer
    ids = [] if tokenizer is None or tokenizer.eos_token_id is None else [tokenizer.eos_token_id]
    if renderer.prompt_format == "chat":
        turn = [{"role": "user", "content": "1+1"}, {"role": "assistant", "content": _PROBE}]
        text = tokenizer.apply_chat_template(turn, tokenize=False)
        after = text[text.rindex(_PROBE) + len(_PROBE) :]
        following = tokenizer.encode(after, add_special_tokens=False)[:1]
        special = set(tokenizer.all_special_ids) | set(tokenizer.added_tokens_decoder)
        ids += [t for t in following if t in special and t not in ids]
    return ids


def _last(messages: Sequence[dict], role: str) -> str:
    contents = [m["content"] for m in messages if m["role"] == role]
    return contents[-1] if contents else ""
