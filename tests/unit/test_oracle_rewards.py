"""The oracle process rewards (``algo.process_reward_source=oracle``): -1 on the first token
that leaves the reference solution, on the right row and position of the batch."""

import pytest
import torch

from prime_megatron.data import synthetic
from prime_megatron.data.tokenizer import build_char_tokenizer
from prime_megatron.evidence.credit import first_wrong_token
from prime_megatron.evidence.samples import DecodedSample
from prime_megatron.passes.batch import Group, SampleBatch
from prime_megatron.trainer.credit import oracle_process_rewards

PROMPT = "47+38-19"
RIGHT = "47+38=85\n85-19=66\n\\boxed{66}"


@pytest.mark.parametrize(
    "response, char",
    [
        (RIGHT, None),
        (RIGHT + "\n", None),  # trailing whitespace is not a step
        ("47+38=75\n75-19=56\n\\boxed{56}", 6),  # the forgotten carry
        ("47+38=85\n85-19=67\n\\boxed{67}", 16),
        ("47+38=85\n", 9),  # stopped early: past the text
        (RIGHT + "\n1+1=2", len(RIGHT)),  # went on after the answer: the newline
        ("47+38=8", 7),
    ],
)
def test_first_wrong_char(response, char):
    assert synthetic.first_wrong_char(PROMPT, response) == char
    if char is not None and char < len(response):
        assert response[:char] == synthetic.parse_prompt(PROMPT).solution[:char]


def test_first_wrong_token_maps_the_char_and_sends_a_stop_to_the_last_token():
    def sample(response: str, pieces=None) -> DecodedSample:
        return DecodedSample(0, PROMPT, tuple(pieces or (*response, "")), 0.0, None)

    assert first_wrong_token(sample(RIGHT)) is None
    assert first_wrong_token(sample("47+38=75\n")) == 6
    # two-character tokens: char 6 lies in token 3 ("=7")
    assert first_wrong_token(sample("", ("47", "+3", "8", "=7", "5\n", ""))) == 3
    stopped = sample("47+38=85\n")  # 9 characters, then EOS
    assert first_wrong_token(stopped) == 9 == len(stopped.pieces) - 1


def test_oracle_rewards_land_on_each_samples_first_wrong_token():
    tok = build_char_tokenizer()
    prompt_ids = [tok.bos_token_id, *tok.encode(PROMPT + "\n")]
    responses = [RIGHT, "47+38=75\n75-19=56\n\\boxed{56}", "47+38=85\n"]
    response_ids = [tok.encode(r) + [tok.eos_token_id] for r in responses]
    group = Group(prompt_ids, response_ids, [[0.0] * len(r) for r in response_ids],
                  [False] * 3, [1.0, 0.0, 0.0], 0, 0)  # fmt: skip
    batch = SampleBatch.from_groups([group], tok.pad_token_id)
    rewards = oracle_process_rewards([group], batch, tok, penalty=2.0)
    assert rewards.shape == batch.mask.shape
    assert rewards[0].abs().sum() == 0  # the right response
    for row, index in ((1, 6), (2, 9)):  # response token index of the first wrong token
        positions = batch.mask[row].nonzero().flatten()
        expected = torch.zeros_like(rewards[row])
        expected[positions[index]] = -2.0
        assert torch.equal(rewards[row], expected)
        # the position's label is that response token
        assert batch.labels[row, positions[index]] == response_ids[row][index]
