"""The trainer's experience state checkpoints itself: the collector (prompt sampler and
carry-over buffer) and the rollout engine's weight version."""

import json
import random
from types import SimpleNamespace

import pytest

from prime_megatron.algo.config import AlgoConfig
from prime_megatron.data.sampler import PromptSampler
from prime_megatron.rollout.engine import RolloutBatch, RolloutEngine
from prime_megatron.trainer import collect
from prime_megatron.trainer.collect import GroupCollector

K = 4


class FakeEngine:
    """K samples per prompt, a function of (seed, prompt): same inputs, same rollouts."""

    weight_version = 0

    def generate(self, prompts, k, seed):
        batch = RolloutBatch([], [], [], [], [], self.weight_version)
        for p, prompt in enumerate(prompts):
            rng = random.Random(f"{seed}/{prompt}")
            for _ in range(k):
                response = [rng.randrange(1, 9) for _ in range(rng.randint(1, 4))]
                batch.prompt_ids.append(list(prompt))
                batch.response_ids.append(response)
                batch.response_logprobs.append([-0.5] * len(response))
                batch.truncated.append(False)
                batch.group_index.append(p)
        return batch


class FakeTokenizer:
    def batch_decode(self, ids, skip_special_tokens=True):
        return [" ".join(map(str, row)) for row in ids]


def fake_scores(_manager, texts, _rows):
    return [float(len(text.split()) % 2) for text in texts], {}


def _rows(n: int) -> list:
    return [SimpleNamespace(messages=({"role": "user", "content": i + 1},), ground_truth="",
                            data_source="plain", ability="math") for i in range(n)]  # fmt: skip


def collector(rows, encode=lambda messages: [messages[0]["content"]]) -> GroupCollector:
    # Oversampling keeps surplus groups in the carry-over buffer from step to step.
    algo = AlgoConfig(oversample_factor=3.0, carryover_max_age=2, accuracy_low=0.0,
                      accuracy_high=1.0)  # fmt: skip
    return GroupCollector(
        rows, PromptSampler(len(rows), seed=3), encode,
        FakeTokenizer(), FakeEngine(), None, algo, prompts_per_step=2, samples_per_prompt=K,
    )  # fmt: skip


def test_collector_state_round_trip_continues_the_same_stream(monkeypatch):
    monkeypatch.setattr(collect, "score_on_rank0", fake_scores)
    rows = _rows(20)
    straight = collector(rows)
    straight.collect(0, seed=0)
    state = json.loads(json.dumps(straight.state_dict()))  # as trainer_state.json holds it
    assert state["buffer"]["entries"], "the test needs groups carried over"
    expected = [straight.collect(step, seed=step) for step in (1, 2)]
    assert collector(rows).collect(1, seed=1) != expected[0]  # the state is what matters
    resumed = collector(rows)
    resumed.load_state_dict(state)
    assert [resumed.collect(step, seed=step) for step in (1, 2)] == expected


class FakeLLM:
    def collective_rpc(self, *args, **kwargs):
        return []

    def reset_prefix_cache(self):
        pass


def test_engine_resumes_at_the_saved_weight_version():
    engine = object.__new__(RolloutEngine)  # no vLLM: only the weight bookkeeping runs
    engine.llm, engine.weight_version = FakeLLM(), 0
    engine.restore_weight_version(5)
    # The first sync after resuming re-publishes the checkpoint's weights: version 5 again.
    assert engine.finish_weight_update() == 5
    assert engine.finish_weight_update() == 6


class CountingEncoder:
    """Prompt ids of a row, or None (over-long) for the rows ``too_long`` picks; refuses to
    be called forever, so an endless draw fails the test instead of hanging it."""

    max_prompt_len = 4

    def __init__(self, too_long) -> None:
        self.too_long, self.calls, self.skipped = too_long, 0, 0

    def __call__(self, messages):
        self.calls += 1
        assert self.calls < 10_000, "the collector kept drawing prompts"
        content = messages[0]["content"]
        if self.too_long(content):
            self.skipped += 1
            return None
        return [content]


def test_over_long_prompts_are_counted_per_step(monkeypatch):
    monkeypatch.setattr(collect, "score_on_rank0", fake_scores)
    encode = CountingEncoder(lambda content: content % 3 == 0)
    _, metrics = collector(_rows(20), encode).collect(0, seed=0)
    assert encode.skipped > 0
    assert metrics["data/skipped_overlong"] == encode.skipped


def test_a_dataset_of_only_over_long_prompts_stops_with_one_line(monkeypatch):
    # prepare_inputs measures only the first rows: the collector must end the draw itself.
    monkeypatch.setattr(collect, "score_on_rank0", fake_scores)
    stuck = collector(_rows(7), CountingEncoder(lambda content: True))
    with pytest.raises(collect.PromptSupplyError) as error:
        stuck.collect(0, seed=0)
    assert str(error.value) == (
        "rollout.max_prompt_len=4: none of the 7 training prompts fits, so no step can be "
        "filled; raise rollout.max_prompt_len or shorten the prompts"
    )
