#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for tests: munged, slurmctld and slurmd, all state,
# logs, sockets and the config in one directory. Nothing under /etc is read or written, so
# several clusters (one per test) can run side by side.
#   scripts/slurm_local.sh start DIR    # prints `export SLURM_CONF=DIR/slurm.conf` when ready
#   SLURM_CONF=DIR/slurm.conf sbatch --wait launch/slurm.sbatch ...
#   scripts/slurm_local.sh stop DIR     # cancels jobs, stops the three daemons
# Needs root (slurmd starts jobs as their user) and Debian's slurm-wlm and munge packages
# (apt-get install slurm-wlm munge). Tested with slurm-wlm 22.05.
set -euo pipefail

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

write_conf() {  # $1: DIR. proctrack/linuxproc and task/none: no cgroups, so it runs in containers
  local dir=$1 node
  node=$(hostname -s)
  cat > "$dir/slurm.conf" <<EOF
ClusterName=hetbench-local
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge.socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$(readlink "$dir/spool")
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
SchedulerType=sched/builtin
NodeName=$node NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=1024 State=UNKNOWN
PartitionName=local Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

start_munge() {  # its own key and socket: never the system's munged
  local dir=$1
  mungekey --create --keyfile="$dir/munge.key" --force
  chmod 0600 "$dir/munge.key"
  munged --force --key-file="$dir/munge.key" --socket="$dir/munge.socket" \
    --pid-file="$dir/munged.pid" --log-file="$dir/munged.log" --seed-file="$dir/munged.seed"
}

start_daemon() {  # $1: DIR, $2: daemon. -D keeps it in the foreground, so its pid is ours to stop
  local dir=$1 name=$2
  SLURM_CONF="$dir/slurm.conf" nohup "$name" -D -f "$dir/slurm.conf" \
    > "$dir/$name.out" 2>&1 < /dev/null &
  echo $! > "$dir/$name.daemon"
}

wait_idle() {  # the node must register with the controller before a job can run
  local dir=$1 state=""
  for _ in $(seq 1 60); do
    state=$(SLURM_CONF="$dir/slurm.conf" sinfo -h -o %T 2>/dev/null || true)
    [ "$state" = idle ] && return 0
    sleep 0.5
  done
  echo "slurm_local: node not idle after 30 s (state: '${state}'); logs in $dir" >&2
  tail -n 20 "$dir"/slurmctld.log "$dir"/slurmd.log >&2 || true
  return 1
}

start() {
  local dir=$1
  for tool in munged mungekey slurmctld slurmd sinfo; do
    command -v "$tool" > /dev/null || { echo "slurm_local: $tool missing; apt-get install slurm-wlm munge" >&2; exit 3; }
  done
  mkdir -p "$dir/state"
  # slurmstepd's sockets live in the spool (<host>_<job>.<step>, the step 4294967291 for a batch
  # script), under the 108-byte limit of a socket path: a short directory, linked from DIR/spool
  [ -L "$dir/spool" ] || ln -s "$(mktemp -d /tmp/hbs.XXXXXX)" "$dir/spool"
  chmod 0700 "$dir"
  write_conf "$dir"
  start_munge "$dir"
  start_daemon "$dir" slurmctld
  start_daemon "$dir" slurmd
  wait_idle "$dir"
  echo "export SLURM_CONF=$dir/slurm.conf"
}

stop_pid() {  # $1: pid file. TERM, then KILL after 10 s
  local file=$1 pid
  [ -f "$file" ] || return 0
  pid=$(cat "$file")
  kill "$pid" 2> /dev/null || { rm -f "$file"; return 0; }
  for _ in $(seq 1 20); do kill -0 "$pid" 2> /dev/null || break; sleep 0.5; done
  kill -9 "$pid" 2> /dev/null || true
  rm -f "$file"
}

stop() {  # jobs first (their slurmstepd must end while slurmd is there to reap it), then daemons
  local dir=$1
  if [ -f "$dir/slurm.conf" ] && [ -f "$dir/slurmctld.daemon" ]; then
    SLURM_CONF="$dir/slurm.conf" scancel --full --quiet --user="$(id -un)" 2> /dev/null || true
    for _ in $(seq 1 20); do
      [ -z "$(SLURM_CONF="$dir/slurm.conf" squeue -h 2> /dev/null)" ] && break
      sleep 0.5
    done
  fi
  stop_pid "$dir/slurmd.daemon"
  stop_pid "$dir/slurmctld.daemon"
  stop_pid "$dir/munged.pid"
  if [ -L "$dir/spool" ]; then rm -rf "$(readlink "$dir/spool")"; fi
}

[ $# -eq 2 ] || usage
case $1 in
  start) start "$(realpath -m "$2")" ;;
  stop) stop "$(realpath -m "$2")" ;;
  *) usage ;;
esac
