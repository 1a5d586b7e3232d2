"""Pre-flight check of your own checkpoint and data before renting GPUs: no training,
minutes on a CPU. What each check does and how to read the report: docs/preflight.md.

    python tools/preflight.py --config my_job.yaml --gpus 8 --gpu-mem-gb 80 \\
        [--rows 200] [--layers 2] [--no-vllm] [--no-model] [section.field=value ...]

The config is loaded and validated as prime-train does (--gpus is the world size), and
every file it names is read and checked. Then, on the first --rows training rows:
1. the tokenizer and prompt format render, encode and decode each row back to its text;
2. prompt lengths against rollout.max_prompt_len;
3. each gold answer is accepted by its verifier;
4. the first --layers layers of the model give the same logits in transformers and in
   Megatron (as the trainer maps them), and vLLM the same log-probs (--no-vllm: without
   vLLM; --no-model: no weights loaded at all);
5. the memory plan on --gpus x --gpu-mem-gb fits.
One PASS / WARN / FAIL / SKIP line per check; exit 0 if nothing failed (warnings allowed),
2 on a failure or on bad input (one line, no traceback).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

if TYPE_CHECKING:
    from prime_megatron.preflight.report import Check
    from prime_megatron.trainer.config import TrainConfig
    from prime_megatron.trainer.inputs import ResolvedInputs

from prime_megatron.console import set_upstream_environment  # noqa: E402 (after sys.path)

set_upstream_environment()  # as prime-train does


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", help="training YAML (as prime-train's --config)")
    p.add_argument("--gpus", type=_positive, required=True, help="devices in the job (world size)")
    p.add_argument("--gpu-mem-gb", type=float, required=True, help="memory per device in GiB")
    p.add_argument("--rows", type=_positive, default=200, help="training rows checked")
    p.add_argument("--layers", type=_positive, default=2, help="model layers compared")
    p.add_argument("--no-vllm", action="store_true", help="compare transformers and Megatron only")
    p.add_argument("--no-model", action="store_true", help="skip check 4 (loads no weights)")
    p.add_argument("--work-dir", type=Path, help="where the reduced model is written "
                   "(default: a temporary dir, removed at the end)")  # fmt: skip
    p.add_argument("--log-file", type=Path, default=Path("preflight.log"),
                   help="upstream logs and warnings (vLLM, Megatron, transformers)")  # fmt: skip
    p.add_argument("overrides", nargs="*", help="section.field=value overrides")
    return p.parse_args(argv)


def load_job(args: argparse.Namespace) -> tuple[TrainConfig, ResolvedInputs]:
    """(validated config, resolved inputs) as prime-train gets them; ``INPUT_ERRORS`` else."""
    from prime_megatron.config.errors import check
    from prime_megatron.run_layout import RunLayout
    from prime_megatron.trainer.config import load_train_config
    from prime_megatron.trainer.inputs import resolve_inputs

    cfg = load_train_config(args.config, args.overrides).validate(args.gpus)
    check(cfg.model.source != "synthetic", "model.source", cfg.model.source,
          "hf or megatron: preflight checks a model and data of yours "
          "(the synthetic job generates both)")  # fmt: skip
    return cfg, resolve_inputs(cfg, RunLayout(cfg.run.output_dir))


def checks_to_run(
    args: argparse.Namespace, cfg: TrainConfig, inputs: ResolvedInputs
) -> list[tuple[str, Callable[[], Check]]]:
    """(title, thunk returning a ``Check``) in report order."""
    from prime_megatron.data.prompt_lengths import measure_prompt_lengths
    from prime_megatron.preflight import gold, lengths, logits, plan, round_trip

    rows = inputs.train.rows[: args.rows]
    encode = inputs.encode
    return [
        (round_trip.TITLE, lambda: round_trip.round_trip(rows, encode).check()),
        (lengths.TITLE, lambda: lengths.lengths_check(measure_prompt_lengths(
            rows, encode.token_ids, encode.max_prompt_len, len(rows)))),
        (gold.TITLE, lambda: gold.check_gold_answers(rows, cfg.rewards).check()),
        (logits.TITLE, lambda: model_check(args, inputs, rows)),
        (plan.TITLE, lambda: plan.plan_verdict(cfg, args.gpus, args.gpu_mem_gb).check()),
    ]  # fmt: skip


def model_check(args: argparse.Namespace, inputs: ResolvedInputs, rows: list) -> Check:
    from prime_megatron.preflight import logits
    from prime_megatron.preflight.report import SKIP, Check

    if args.no_model:
        return Check(logits.TITLE, SKIP, "--no-model: no weights loaded")
    prompt = logits.parity_prompt(rows, inputs.encode)
    with tempfile.TemporaryDirectory(prefix="preflight-", dir=args.work_dir) as work:
        agreement = logits.model_agreement(
            inputs.start, prompt, args.layers, Path(work), with_vllm=not args.no_vllm
        )
    return agreement.check()


def run_checks(args: argparse.Namespace, cfg: TrainConfig, inputs: ResolvedInputs) -> list[Check]:
    """Every check, a progress line before each; a check that cannot finish on bad input
    (a tensor missing from the checkpoint, a model vLLM refuses) is its FAIL line."""
    from prime_megatron.console import say
    from prime_megatron.preflight.report import FAIL, Check

    steps = checks_to_run(args, cfg, inputs)
    results = []
    for i, (title, thunk) in enumerate(steps, start=1):
        say(f"preflight [{i}/{len(steps)}] {title} ...")
        try:
            results.append(thunk())
        except ValueError as e:  # the project's input errors are ValueErrors
            results.append(Check(title, FAIL, f"{type(e).__name__}: {e}"))
    return results


def header(args: argparse.Namespace, inputs: ResolvedInputs) -> str:
    return (
        f"preflight: {args.config or 'default job'}: model {inputs.start.path} "
        f"({inputs.start.format}), tokenizer {inputs.tokenizer_source}, "
        f"{len(inputs.train)} training rows in {list(inputs.train_files)}, first "
        f"{min(args.rows, len(inputs.train))} checked"
    )


def main(argv: list[str] | None = None) -> int:
    from prime_megatron.console import route_logs

    args = parse_args(argv)
    route_logs(args.log_file)  # before Megatron's import announces its CPU fallbacks
    from prime_megatron.config.errors import ConfigError
    from prime_megatron.preflight.report import exit_code, render
    from prime_megatron.trainer.inputs import INPUT_ERRORS

    try:
        cfg, inputs = load_job(args)
    except INPUT_ERRORS as e:
        kind = "config error" if isinstance(e, ConfigError) else "error"
        print(f"preflight: {kind}: {e}", file=sys.stderr)
        return 2
    checks = run_checks(args, cfg, inputs)
    print("\n".join([header(args, inputs), render(checks), f"upstream logs: {args.log_file}"]))
    return exit_code(checks)


if __name__ == "__main__":
    sys.exit(main())
