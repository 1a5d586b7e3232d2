import copy
from types import SimpleNamespace

from prime_megatron.data.template import PromptRenderer, answer_end_ids
from prime_megatron.data.tokenizer import build_char_tokenizer
from prime_megatron.rollout.config import RolloutConfig
from prime_megatron.rollout.engine import RolloutEngine


def test_a_base_checkpoints_eos_and_the_templates_end_of_turn_both_stop(bpe_tokenizer):
    # Qwen2.5-Math-7B (base) names <|endoftext|> as EOS while ChatML turns end in <|im_end|>.
    qwen = copy.deepcopy(bpe_tokenizer("qwen2.5"))
    qwen.eos_token = "<|endoftext|>"
    assert answer_end_ids(PromptRenderer("chat", qwen)) == [151643, 151645]
    assert answer_end_ids(PromptRenderer("plain", qwen)) == [151643]
    llama = copy.deepcopy(bpe_tokenizer("llama3"))
    llama.eos_token = "<|end_of_text|>"
    assert answer_end_ids(PromptRenderer("chat", llama)) == [128001, 128009]  # <|eot_id|>
    char = build_char_tokenizer()
    assert answer_end_ids(PromptRenderer("chat", char)) == [char.eos_token_id]


def test_rollouts_sample_with_the_stop_tokens():
    engine = SimpleNamespace(cfg=RolloutConfig(), stop_token_ids=[151643, 151645])
    params = RolloutEngine._sampling_params(engine, n=4, seed=1, temperature=1.0)
    assert params.stop_token_ids == [151643, 151645] and params.n == 4
