"""``prime-train`` / ``torchrun ... -m prime_megatron.train``: the PRIME training job.

    prime-train                                   # the default job: tiny PRIME run on CPU
    prime-train --config configs/tiny_cpu.yaml run.steps=10 algo.beta=0.1
    prime-train --config configs/qwen25_math_7b_prime.yaml --print-config
    torchrun --nproc_per_node 2 -m prime_megatron.train --config C parallel.tensor_parallel=2

With no ``--config`` the job is ``configs/tiny_cpu.yaml``; the fields a YAML leaves out keep
their component defaults, the paper's recipe. ``--print-config`` prints the resolved config
(YAML, every field) and exits: 0 if it validates here, 2 with the reason if not.

The config is validated, and every file it names (data rows, start model, tokenizer, resume
checkpoint) loaded and checked, before anything heavy starts and before the run dir is
created; a bad one exits with code 2 and a one-line message. The validated config is
written, as it runs, to ``<run.output_dir>/config.yaml`` and what the run derived from it
to ``resolved_inputs.json`` (see ``prime_megatron/run_layout.py``).
"""

from __future__ import annotations

import argparse
import os
import sys

from prime_megatron.console import route_logs, say, set_upstream_environment  # light

set_upstream_environment()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="prime-train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--config", help="YAML config (default: configs/tiny_cpu.yaml)")
    p.add_argument("--print-config", action="store_true",
                   help="print the resolved config, exit (2 if it does not validate)")  # fmt: skip
    p.add_argument("overrides", nargs="*", help="section.field=value overrides")
    return p.parse_args(argv)


def load_and_validate(argv: list[str] | None):
    """The validated (frozen) config of a command line."""
    from prime_megatron.trainer.config import load_train_config

    args = parse_args(argv)
    cfg = load_train_config(args.config, args.overrides)
    return cfg.validate(_world_size())


def _world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def _print_config(args: argparse.Namespace) -> int:
    """Print the resolved config, then validate it (a ``ConfigError`` is the caller's)."""
    import yaml

    from prime_megatron.config.loader import to_dict
    from prime_megatron.trainer.config import load_train_config

    cfg = load_train_config(args.config, args.overrides)
    print(yaml.safe_dump(to_dict(cfg), sort_keys=False), end="", flush=True)
    cfg.validate(_world_size())
    return 0


def _quiet_known_warnings() -> None:
    import warnings

    # Megatron announces its CPU fallbacks (no Apex / Transformer-Engine) on every import.
    for pattern in (".*Apex.*", ".*Transformer Engine.*", ".*cuda_graph_scope.*"):
        warnings.filterwarnings("ignore", message=pattern, category=UserWarning)


def main(argv: list[str] | None = None) -> int:
    _quiet_known_warnings()
    from prime_megatron.config.errors import ConfigError
    from prime_megatron.run_layout import RunLayout
    from prime_megatron.trainer.inputs import INPUT_ERRORS, prepare_inputs

    args = parse_args(argv)
    try:
        if args.print_config:
            return _print_config(args)
        cfg = load_and_validate(argv)
        inputs = prepare_inputs(cfg, RunLayout(cfg.run.output_dir))
    except INPUT_ERRORS as e:
        return _refuse(e, "config error" if isinstance(e, ConfigError) else "error")
    return _run(cfg, inputs)


def _run(cfg, inputs) -> int:
    """Train a validated config on its prepared inputs; export and summarise at the end."""
    from prime_megatron.checkpoint.hf_io import CheckpointError
    from prime_megatron.distributed.init import init_distributed
    from prime_megatron.run_layout import RunLayout
    from prime_megatron.trainer.collect import PromptSupplyError
    from prime_megatron.trainer.export import export_final_models, plot_run
    from prime_megatron.trainer.loop import Trainer

    init_distributed()
    _route_logs(RunLayout(cfg.run.output_dir))
    try:
        trainer = Trainer(cfg, inputs)
    except CheckpointError as e:  # a resume checkpoint that only its load finds unfit
        return _refuse(e)
    try:
        result = trainer.train()
        if result["finished"]:
            export_final_models(cfg.run, trainer.models, trainer.parallel, trainer.meta,
                                trainer.layout, trainer.prm_meta)  # fmt: skip
            if cfg.run.plot:
                plot_run(trainer.layout)
            _print_summary(result)
    except PromptSupplyError as e:  # past the prompts prepare_inputs measured
        return _refuse(e)
    finally:
        trainer.close()
    return 0


def _refuse(error: Exception, kind: str = "error") -> int:
    """Bad input: one line on stderr, exit code 2."""
    print(f"prime-train: {kind}: {error}", file=sys.stderr)
    return 2


def _route_logs(layout) -> None:
    import torch.distributed as dist

    from prime_megatron.distributed.rank import log0

    route_logs(layout.log_file(dist.get_rank()))
    log0(f"upstream logs and warnings: {layout.log_file(0)}")


def _print_summary(result: dict) -> None:
    from prime_megatron.distributed.rank import is_rank0

    if not is_rank0():
        return
    _print_prm_summary(result.get("prm") or {})
    say(_time_summary(result["seconds"], result["rl_steps"]))
    before, after = result["before"], result["after"]
    if not (before and after):
        return
    n = int(after["prompts"])
    for prefix, label in (("", "greedy pass@1"), ("sampled_", "sampled pass@1")):
        key = prefix + "pass@1"
        if key not in after:
            continue
        line = (
            f"held-out accuracy ({label}, {n} prompts): before RL {before[key]:.3f} "
            f"-> after RL {after[key]:.3f} (+-{after[key + '_ci95']:.3f} 95% CI)"
        )
        if key + "_change" in after:
            change, ci95 = after[key + "_change"], after[key + "_change_ci95"]
            line += f"; paired change {change:+.3f} (+-{ci95:.3f})"
        say(line)


def _time_summary(seconds: dict[str, float], steps: int) -> str:
    """The job's wall-clock by part (its SFT only when this run trained it)."""
    parts = [f"SFT {seconds['sft'] / 60:.1f} min"] if "sft" in seconds else []
    parts.append(f"RL {seconds['rl'] / 60:.1f} min ({steps} steps, "
                 f"{seconds['rl'] / max(steps, 1):.1f} s/step)")  # fmt: skip
    if "eval" in seconds:
        parts.append(f"held-out evaluation {seconds['eval'] / 60:.1f} min")
    return "time: " + ", ".join(parts)


PRM_SUMMARY = (
    ("prm/pairwise_acc", "pairwise accuracy"),
    ("prm/outcome_auroc", "outcome AUROC"),
    ("credit/prm_auroc", "first-wrong-step AUROC"),
    ("credit/confidence_policy_auroc", "policy-confidence baseline"),
    ("credit/confidence_sft_auroc", "SFT-confidence baseline"),
    ("credit/prm_auroc_carry", "carry-step AUROC"),
    # Near 0: the policy's update is outcome-only RLOO's, whatever the PRM knows.
    ("adv/process_share", "process share of the advantages"),
)


def _print_prm_summary(tail: dict) -> None:
    """The implicit PRM's learning over the last third of training (0.5 = chance)."""
    parts = [f"{label} {tail[key]:.3f}" for key, label in PRM_SUMMARY if key in tail]
    if parts:
        steps = f"steps {tail['first_step']}-{tail['last_step']}"
        say(f"implicit PRM, mean over {steps}: " + ", ".join(parts))


if __name__ == "__main__":
    sys.exit(main())
