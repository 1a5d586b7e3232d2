"""Benchmark: outcome-reward scoring throughput, process/sandbox pool vs serial, same run.

    python benchmarks/rewards.py                  # 600 math + 48 code samples
    python benchmarks/rewards.py --small          # quick run, same code path

Math samples are LaTeX answers that need math-verify (fractions, roots, intervals, x=..;
half right, half wrong), every one distinct so no parse cache favours a side, plus
arithmetic-task answers (the integer fast path). Code samples are stdin/stdout programs
with 3 tests each (half right, one in six a runtime error). Serial: ``RewardManager`` with
``parallel=False`` (in this process, one sample at a time). Pool: ``parallel=True`` with
``--workers`` math processes / concurrent sandboxes; its start-up (spawn + math-verify
import) is reported separately and not counted in its throughput. The two sides take
turns on chunks of the samples (``--rounds``), and both must give identical verdicts.
Prints one JSON line.
"""

import argparse
import json
import os
import random
import time

from prime_megatron.data.synthetic import ArithmeticConfig, generate
from prime_megatron.evidence.provenance import record
from prime_megatron.rewards.config import RewardConfig
from prime_megatron.rewards.manager import RewardInput, RewardManager
from prime_megatron.rewards.math_verifier import warm_up

LATEX_FORMS = [
    (lambda i: f"\\frac{{{i}}}{{{i + 1}}}", lambda i: f"{i}/{i + 1}"),
    (lambda i: f"{i}\\sqrt{{2}}", lambda i: f"\\sqrt{{{2 * i * i}}}"),
    (lambda i: f"({i}, {i + 3}]", lambda i: f"({i},{i + 3}]"),
    (lambda i: f"x={i}.5", lambda i: f"\\frac{{{2 * i + 1}}}{{2}}"),
]
PROGRAMS = {
    "right": "a, b = map(int, input().split())\nprint(a + b)",
    "wrong": "a, b = map(int, input().split())\nprint(a - b)",
    "crash": "a, b = map(int, input().split())\nprint(a // 0)",
}


def math_samples(n: int, offset: int) -> list[RewardInput]:
    """``n`` distinct samples: 3/4 LaTeX needing math-verify, 1/4 arithmetic-task answers."""
    samples = []
    for i in range(offset, offset + n * 3 // 4):
        gold, predicted = LATEX_FORMS[i % len(LATEX_FORMS)]
        answer = predicted(i) if i % 2 == 0 else predicted(i + 1)  # half wrong
        samples.append(RewardInput(f"... so \\boxed{{{answer}}}", gold(i), "numina", "math"))
    for problem in generate(n - len(samples), ArithmeticConfig(), seed=offset):
        samples.append(RewardInput(problem.solution, str(problem.answer), "arith", "math"))
    random.Random(offset).shuffle(samples)  # every chunk in compare() gets the same mix
    return samples


def code_samples(n: int) -> list[RewardInput]:
    tests = json.dumps({"inputs": ["1 2\n", "5 3\n", "10 20\n"], "outputs": ["3", "8", "30"]})
    kinds = ["right", "wrong", "right", "wrong", "right", "crash"]
    return [
        RewardInput(f"```python\n{PROGRAMS[kinds[i % 6]]}\n```", tests, "apps", "code")
        for i in range(n)
    ]


def compare(serial: RewardManager, pool: RewardManager, samples: list, rounds: int) -> dict:
    """Samples/s of each side. The sides take turns on chunks of the samples (order
    alternating per round), so load from other work on the machine hits both alike."""
    seconds = {"serial": 0.0, "pool": 0.0}
    chunk = -(-len(samples) // rounds)
    for r in range(rounds):
        part = samples[r * chunk : (r + 1) * chunk]
        sides = [("serial", serial), ("pool", pool)][:: 1 if r % 2 == 0 else -1]
        verdicts = {}
        for name, manager in sides:
            start = time.perf_counter()
            verdicts[name] = manager.score(part).verdicts
            seconds[name] += time.perf_counter() - start
        assert verdicts["pool"] == verdicts["serial"], "pool and serial disagree"
    return _side(len(samples), len(samples) / seconds["serial"], len(samples) / seconds["pool"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    n_math, n_code = (120, 12) if args.small else (600, 48)
    load_before = os.getloadavg()[0]

    warm_up()  # serial side: import math-verify before timing, like the pool's initializer
    serial = RewardManager(RewardConfig(parallel=False))
    pool = RewardManager(RewardConfig(num_workers=args.workers))
    start = time.perf_counter()
    pool.score(math_samples(args.workers, offset=10**6))  # spawns and warms the workers
    startup_s = time.perf_counter() - start

    # Same samples both sides, new to each side's processes (math-verify caches parses).
    math = compare(serial, pool, math_samples(n_math, offset=0), args.rounds)
    code = compare(serial, pool, code_samples(n_code), args.rounds)
    pool.close()

    print(
        json.dumps(
            {
                "benchmark": "rewards",
                **record(config=args),
                "cpus": os.cpu_count(),
                "workers": args.workers,
                # Other work on the machine competes with the pool: report it.
                "loadavg_1m_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
                "pool_startup_s": round(startup_s, 2),
                "math": math,
                "code": code,
            }
        )
    )


def _side(n: int, serial: float, pool: float) -> dict:
    return {
        "samples": n,
        "serial_samples_per_s": round(serial, 1),
        "pool_samples_per_s": round(pool, 1),
        "speedup": round(pool / serial, 2),
    }


if __name__ == "__main__":
    main()
