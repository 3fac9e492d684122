#!/usr/bin/env bash
# Run hetbench's worker on one node of a multi-node cluster. Start it on every node with the
# same HEAD (the rendezvous host), NNODES and RUN_ID; every rank composes the same config.
#   HEAD=node0 NNODES=2 NPROC=8 RUN_ID=exp42 launch/torchrun_multinode.sh cluster=... out_root=/shared/runs
set -euo pipefail
: "${HEAD:?set HEAD to the rendezvous host}" "${NNODES:?set NNODES}" "${NPROC:?set NPROC (GPUs per node)}"
export HETBENCH_RUN_ID=${RUN_ID:-$(date +%Y%m%d-%H%M%S)-multinode}
exec torchrun --nnodes "$NNODES" --nproc-per-node "$NPROC" --rdzv-backend c10d \
  --rdzv-endpoint "$HEAD:${PORT:-29500}" --rdzv-id "$HETBENCH_RUN_ID" --max-restarts 0 \
  -m bench.train "$@"
