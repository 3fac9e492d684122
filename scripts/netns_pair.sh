#!/usr/bin/env bash
# Two "hosts" on this machine: network namespaces <prefix>a and <prefix>b joined by a veth pair
# (<prefix>-a in the first, <prefix>-b in the second), 10.231.<net>.1 and .2/24, loopback up in
# each. Each host's name is its namespace's and resolves inside both (ip netns exec mounts
# /etc/netns/<ns>/hosts over /etc/hosts), as a cluster's DNS would: torchrun's rendezvous and
# Gloo look their own host name up. For multi-node tests of torchrun (tests/test_multinode.py);
# needs root and iproute2.
#   scripts/netns_pair.sh up hb1 7      # namespaces hb1a, hb1b; 10.231.7.1 <-> 10.231.7.2
#   ip netns exec hb1a unshare --uts sh -c 'hostname hb1a; exec ...'   # a host of its own
#   scripts/netns_pair.sh down hb1      # deletes both namespaces (and with them the veth pair)
set -euo pipefail

usage() { echo "usage: $0 up PREFIX NET(0-255) | down PREFIX" >&2; exit 2; }

up() {
  local p=$1 net=$2
  [[ $net =~ ^[0-9]+$ ]] && [ "$net" -le 255 ] || usage
  [ ${#p} -le 12 ] || { echo "netns_pair: prefix '$p' too long (interface names: 15 chars)" >&2; exit 2; }
  ip netns add "${p}a"
  ip netns add "${p}b"
  ip link add "${p}-a" type veth peer name "${p}-b"
  ip link set "${p}-a" netns "${p}a"
  ip link set "${p}-b" netns "${p}b"
  for side in a b; do
    local addr=1
    [ $side = b ] && addr=2
    ip -n "${p}${side}" addr add "10.231.${net}.${addr}/24" dev "${p}-${side}"
    ip -n "${p}${side}" link set "${p}-${side}" up
    ip -n "${p}${side}" link set lo up
    mkdir -p "/etc/netns/${p}${side}"
    printf '127.0.0.1 localhost\n10.231.%s.1 %sa\n10.231.%s.2 %sb\n' "$net" "$p" "$net" "$p" \
      > "/etc/netns/${p}${side}/hosts"
  done
}

down() {  # a namespace's processes keep it alive: callers stop theirs first
  local p=$1
  for side in a b; do
    ip netns del "${p}${side}" 2> /dev/null || true
    rm -rf "/etc/netns/${p}${side}"
  done
}

case ${1:-} in
  up) [ $# -eq 3 ] || usage; up "$2" "$3" ;;
  down) [ $# -eq 2 ] || usage; down "$2" ;;
  *) usage ;;
esac
