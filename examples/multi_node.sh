#!/usr/bin/env bash
# Run this on every node. NNODES, NODE_RANK and MASTER_ADDR come from your scheduler or you.
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 bash examples/multi_node.sh 8 configs/multinode_example.yaml
set -euo pipefail
NPROC=${1:-8}; CONFIG=${2:-configs/multinode_example.yaml}; shift $(( $# < 2 ? $# : 2 ))
exec torchrun --nnodes "${NNODES:?}" --node_rank "${NODE_RANK:?}" --nproc_per_node "$NPROC" \
  --master_addr "${MASTER_ADDR:?}" --master_port "${MASTER_PORT:-29500}" \
  -m prime_megatron.train --config "$CONFIG" "$@"
