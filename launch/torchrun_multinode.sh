#!/usr/bin/env bash
# Run hetbench's worker on one node of a multi-node cluster. Start it on every node with the
# same HEAD (the rendezvous host), NNODES and RUN_ID; every rank composes the same config.
#   HEAD=node0 NNODES=2 NPROC=8 RUN_ID=exp42 launch/torchrun_multinode.sh cluster=... out_root=/shared/runs
# PORT: the rendezvous port on HEAD (default 29500). Every node's host name must resolve to the
# address the others reach it by (torchrun and Gloo look it up); GLOO_SOCKET_IFNAME picks the
# interface otherwise. SHAPE_DEV=<iface>, with emulation.network=kernel among the overrides,
# shapes this node's inter-site interface to network.inter_site.bandwidth_gbps with tc tbf
# first (root; bench/emulate/kernel_link.py). Tested: tests/test_multinode.py, two network
# namespaces joined by a veth pair, one agent in each, 2 CPU ranks per agent.
set -euo pipefail
: "${HEAD:?set HEAD to the rendezvous host}" "${NNODES:?set NNODES}" "${NPROC:?set NPROC (ranks per node)}"
export HETBENCH_RUN_ID=${RUN_ID:-$(date +%Y%m%d-%H%M%S)-multinode}
if [ -n "${SHAPE_DEV:-}" ]; then
  python -m bench.emulate.kernel_link --dev "$SHAPE_DEV" "$@"
fi
exec torchrun --nnodes "$NNODES" --nproc-per-node "$NPROC" --rdzv-backend c10d \
  --rdzv-endpoint "$HEAD:${PORT:-29500}" --rdzv-id "$HETBENCH_RUN_ID" --max-restarts 0 \
  -m bench.train "$@"
