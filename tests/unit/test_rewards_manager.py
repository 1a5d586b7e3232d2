import json

import pytest

from prime_megatron.config.errors import ConfigError
from prime_megatron.data.dataset import PromptDataset
from prime_megatron.data.synthetic import ArithmeticConfig, generate, rl_row, write_jsonl
from prime_megatron.rewards.config import RewardConfig
from prime_megatron.rewards.manager import RewardInput, RewardManager
from prime_megatron.rewards.sandbox.config import SandboxConfig

SANDBOX = SandboxConfig(test_timeout_s=1.0, cpu_time_s=1)
ADD = json.dumps({"inputs": ["1 2\n", "3 4\n"], "outputs": ["3", "7"]})


def code(program: str) -> str:
    return f"Here you go:\n```python\n{program}\n```"


MIXED = [
    RewardInput("\\boxed{\\frac{1}{2}}", "0.5", "numina_olympiads", "math"),
    RewardInput("\\boxed{3}", "4", "numina_olympiads", "math"),
    RewardInput("I give up", "4", "numina_olympiads", "math"),
    RewardInput("#### 12", "12", "gsm8k", "math"),
    RewardInput(code("a, b = map(int, input().split())\nprint(a + b)"), ADD, "apps", "code"),
    RewardInput(code("a, b = map(int, input().split())\nprint(3)"), ADD, "apps", "code"),
    RewardInput(code("raise SystemExit(2)"), ADD, "taco", "code"),
    RewardInput(
        code("import socket\nsocket.socket().connect(('1.1.1.1', 80))"), ADD, "taco", "code"
    ),
    RewardInput("no code, sorry", ADD, "codecontests", "code"),
]
EXPECTED = [
    (1.0, "ok"),
    (0.0, "ok"),
    (0.0, "no_answer"),
    (1.0, "ok"),
    (1.0, "ok"),
    (0.5, "ok"),
    (0.0, "crash"),
    (0.0, "sandbox_violation"),
    (0.0, "no_answer"),
]


@pytest.fixture(scope="module")
def parallel():
    with RewardManager(RewardConfig(num_workers=2, sandbox=SANDBOX)) as manager:
        yield manager


def test_mixed_batch_scores_and_failure_counts(parallel):
    batch = parallel.score(MIXED)
    assert [(v.score, v.status) for v in batch.verdicts] == EXPECTED
    assert batch.scores == [score for score, _ in EXPECTED]
    assert batch.failures == {
        "timeout": 0,
        "crash": 1,
        "no_answer": 2,
        "sandbox_violation": 1,
        "bad_gold": 0,
    }


def test_parallel_and_serial_agree(parallel):
    serial = RewardManager(RewardConfig(parallel=False, sandbox=SANDBOX))
    assert serial.score(MIXED).verdicts == parallel.score(MIXED).verdicts


def test_empty_batch(parallel):
    batch = parallel.score([])
    assert batch.verdicts == [] and set(batch.failures.values()) == {0}


def test_math_timeout_scores_zero_and_is_counted():
    cfg = RewardConfig(num_workers=1, math_timeout_s=1e-6, parallel=False)
    batch = RewardManager(cfg).score([RewardInput("\\boxed{\\sqrt{8}}", "2\\sqrt{2}", "m", "math")])
    assert (batch.verdicts[0].score, batch.verdicts[0].status) == (0.0, "timeout")
    assert batch.failures["timeout"] == 1


def test_unusable_math_ground_truth_is_counted_and_logged(caplog):
    samples = [
        RewardInput("\\boxed{1}", "There is exactly 1 such triangle", "m", "math"),
        RewardInput("\\boxed{1}", "1", "m", "math"),
    ]
    batch = RewardManager(RewardConfig(parallel=False)).score(samples)
    assert [(v.score, v.status) for v in batch.verdicts] == [(0.0, "bad_gold"), (1.0, "ok")]
    assert batch.failures["bad_gold"] == 1
    assert "such triangle" in caplog.text


def test_synthetic_rows_go_through_the_math_path(parallel, tmp_path):
    problems = generate(40, ArithmeticConfig(), seed=2)
    path = str(tmp_path / "train.jsonl")
    write_jsonl((rl_row(p, i, "train") for i, p in enumerate(problems)), path)
    rows = PromptDataset.load([path]).rows
    right = [
        RewardInput(p.solution, r.ground_truth, r.data_source, r.ability)
        for p, r in zip(problems, rows, strict=True)
    ]
    wrong = [
        RewardInput(
            p.solution.replace("\\boxed{", "\\boxed{1"), r.ground_truth, r.data_source, r.ability
        )
        for p, r in zip(problems, rows, strict=True)
    ]
    assert parallel.score(right).scores == [1.0] * 40
    assert parallel.score(wrong).scores == [0.0] * 40


def test_routing_by_data_source_then_ability():
    cfg = RewardConfig(verifier_by_data_source={"my_code_set": "code"})
    assert cfg.verifier_for("my_code_set", "math") == "code"
    assert cfg.verifier_for("numina", "math") == "math"
    with pytest.raises(KeyError, match="data_source='x', ability='chemistry'"):
        cfg.verifier_for("x", "chemistry")
    with pytest.raises(KeyError, match="no verifier"):
        RewardManager(RewardConfig(parallel=False)).score([RewardInput("", "1", "x", "poetry")])


def test_malformed_code_ground_truth_raises_not_scores(parallel):
    with pytest.raises(ValueError, match="not JSON"):
        parallel.score([RewardInput(code("print(1)"), "{broken", "apps", "code")])


@pytest.mark.parametrize(
    "change,field",
    [
        ({"num_workers": 0}, "rewards.num_workers"),
        ({"math_timeout_s": 0}, "rewards.math_timeout_s"),
        ({"answer_extractors": ["boxed", "vibes"]}, "rewards.answer_extractors"),
        ({"answer_extractors": []}, "rewards.answer_extractors"),
        ({"start_method": "thread"}, "rewards.start_method"),
        ({"verifier_by_ability": {"math": "sympy"}}, "rewards.verifier_by_ability"),
        ({"sandbox": SandboxConfig(memory_mb=16)}, "sandbox.memory_mb"),
        ({"sandbox": SandboxConfig(test_timeout_s=0)}, "sandbox.test_timeout_s"),
        ({"sandbox": SandboxConfig(max_open_files=3)}, "sandbox.max_open_files"),
    ],
)
def test_config_errors_name_the_field(change, field):
    cfg = RewardConfig(**change)
    with pytest.raises(ConfigError, match=field):
        cfg.validate()
