"""Plot a run's metrics.jsonl as PNG curves.

python tools/plot_run.py RUN_DIR [--out metrics.png] [--keys rollout/accuracy prm/pairwise_acc]
"""

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("run_dir", type=Path)
    p.add_argument("--out", type=Path)
    p.add_argument("--keys", nargs="+", help="metric names (default: the main training curves)")
    args = p.parse_args(argv)

    from prime_megatron.run_layout import RunLayout
    from prime_megatron.trainer.plotting import DEFAULT_KEYS, plot_metrics

    metrics = RunLayout(args.run_dir).metrics
    if not metrics.is_file():
        print(f"plot_run: error: {metrics} not found", file=sys.stderr)
        return 2
    try:
        out = plot_metrics(args.run_dir, args.out, tuple(args.keys or DEFAULT_KEYS))
    except ValueError as e:
        print(f"plot_run: error: {e}", file=sys.stderr)
        return 2
    print(f"plot_run: wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
