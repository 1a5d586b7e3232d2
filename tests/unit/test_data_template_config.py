from dataclasses import replace

import pytest

from prime_megatron.config.errors import ConfigError
from prime_megatron.data.config import DataConfig
from prime_megatron.data.template import PromptRenderer
from prime_megatron.data.tokenizer import build_char_tokenizer

MESSAGES = ({"role": "system", "content": "Be brief."}, {"role": "user", "content": "47+38-19"})


def test_chat_format_uses_the_tokenizer_template():
    render = PromptRenderer("chat", build_char_tokenizer())
    assert render(MESSAGES[1:]) == "<bos>47+38-19\n"


def test_plain_format_fills_prompt_and_system():
    render = PromptRenderer("plain", plain_template="{system}|Q: {prompt}\nA:")
    assert render(MESSAGES) == "Be brief.|Q: 47+38-19\nA:"
    assert PromptRenderer("plain", plain_template="{system}{prompt}")(MESSAGES[1:]) == "47+38-19"


def test_chat_format_without_a_template_fails_fast():
    tokenizer = build_char_tokenizer()
    tokenizer.chat_template = None
    with pytest.raises(ConfigError, match="prompt_format=plain"):
        PromptRenderer("chat", tokenizer)


def test_data_config_validates(tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text("{}\n")
    DataConfig(train_files=[str(data)]).validate()


@pytest.mark.parametrize(
    "change,field",
    [
        ({"train_files": []}, "data.train_files"),
        ({"train_files": ["/nope/train.jsonl"]}, "data.train_files"),
        ({"val_files": ["x.csv"]}, "data.val_files"),
        ({"prompt_format": "chatml"}, "data.prompt_format"),
        ({"plain_template": "Q:"}, "data.plain_template"),
        ({"default_ability": ""}, "data.default_ability"),
    ],
)
def test_data_config_errors_name_the_field(tmp_path, change, field):
    data = tmp_path / "train.jsonl"
    data.write_text("{}\n")
    cfg = replace(DataConfig(train_files=[str(data)]), **change)
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        cfg.validate()


def test_row_defaults_come_from_the_config():
    defaults = DataConfig(default_data_source="gsm8k", default_ability="math").row_defaults()
    assert (defaults.data_source, defaults.ability) == ("gsm8k", "math")
