#!/usr/bin/env bash
# One node, N processes (GPUs, or CPU processes with gloo). Extra args are config overrides.
#   bash examples/single_node.sh 8 configs/qwen25_math_7b_prime.yaml run.steps=100
set -euo pipefail
NPROC=${1:-2}; CONFIG=${2:-configs/tiny_cpu.yaml}; shift $(( $# < 2 ? $# : 2 ))
exec torchrun --standalone --nproc_per_node "$NPROC" -m prime_megatron.train --config "$CONFIG" "$@"
