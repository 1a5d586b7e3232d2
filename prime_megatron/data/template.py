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


def _last(messages: Sequence[dict], role: str) -> str:
    contents = [m["content"] for m in messages if m["role"] == role]
    return contents[-1] if contents else ""
