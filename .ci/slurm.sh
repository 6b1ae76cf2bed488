#!/usr/bin/env bash
# A throwaway two-node Slurm cluster (munge + slurmctld + two slurmds) for
# tests, on one machine:
#   .ci/slurm.sh start|stop|status STATE_DIR
# Run as root. Needs the Debian packages munge slurmctld slurmd slurm-client
# and iproute2.
# Each node (node1, node2) is a slurmd in its own network namespace
# (vslurm-node1, …) and UTS namespace (hostname node1, …), with its own
# address (10.231.0.11, .12) on a veth pair whose host end is in a bridge,
# vslurm0, that holds slurmctld's address 10.231.0.1: the nodes reach the
# controller and each other (Open MPI's TCP between nodes) only through
# addresses this script made. File systems are shared, as on a cluster: the
# munge socket, slurm.conf, /tmp and home directories; each node has its own
# spool directory (/var/spool/slurmd/node1, …), TmpFS (STATE_DIR/tmp/node1),
# pid file and log (STATE_DIR/slurmd-node1.log; VESSEL_SLURMD_DEBUG=debug for
# more). slurm.conf names the nodes by NodeAddr, so no /etc/hosts entry is
# needed.
# VESSEL_SLURM_VESSEL=/path/to/vessel: build the SPANK plugin of
# contrib/spank (--container-image on srun/sbatch/salloc; needs cc and
# libslurm-dev) into STATE_DIR and load it with vessel=that binary, and the
# plugin arguments of VESSEL_SLURM_SPANK_ARGS (e.g. binds=SRC:DST:ro).
# PID 1 on CI machines is not systemd, so the daemons are started by hand and
# stopped by the PIDs recorded in STATE_DIR (never by name).
set -euo pipefail

cmd=${1:-} state=${2:-}
if [ -z "$cmd" ] || [ -z "$state" ]; then
  echo "usage: $0 start|stop|status STATE_DIR" >&2
  exit 2
fi
# Addresses of our own (a private /24 nothing else here uses).
net=10.231.0
bridge=vslurm0
nodes=(node1 node2)
node_addr() { echo "$net.$((10 + ${1#node}))"; } # node1 -> 10.231.0.11
netns_of() { echo "vslurm-$1"; }                # network namespace
veth_of() { echo "vsl-$1"; }                    # host end of its veth pair
# Pid file name:process name, for each daemon this script starts.
daemons=(munged:munged slurmctld:slurmctld slurmd-node1:slurmd slurmd-node2:slurmd)

# True while PID runs as the daemon we started. A zombie counts as gone
# (killed daemons may stay <defunct> for minutes when PID 1 does not reap),
# and a recycled PID running something else is not ours.
alive() {
  local pid=$1 name=$2 st
  [ -r "/proc/$pid/stat" ] || return 1
  st=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [ "$st" != Z ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ]
}

pid_of() { cat "$state/$1.pid" 2>/dev/null || true; }

# Waits up to $3 tenths of a second for a daemon to exit.
wait_gone() {
  local i
  for ((i = 0; i < $3; i++)); do alive "$1" "$2" || return 0; sleep 0.1; done
  return 1
}

stop() {
  local d pid
  # Nothing of a cluster was started with this STATE_DIR (no pid file, no
  # network): stop nothing. The sweep below would otherwise kill the jobs of
  # a cluster started with another STATE_DIR (a cleanup trap's stop after a
  # start that was refused because that cluster runs).
  compgen -G "$state/*.pid" >/dev/null || [ -e "$state/network" ] || return 0
  # slurmstepd outlives slurmd by design: end the jobs while slurmctld still
  # runs so that no job processes are left behind.
  pid=$(pid_of slurmctld)
  if [ -n "$pid" ] && alive "$pid" slurmctld; then
    timeout 5 squeue -h -o %A 2>/dev/null | xargs -r timeout 5 scancel 2>/dev/null || true
    for _ in $(seq 150); do
      [ -z "$(timeout 5 squeue -h -o %A 2>/dev/null)" ] && break
      sleep 0.1
    done
  fi
  # Compute daemons first, munge last: the others need munge to shut down.
  local entry name comm
  for entry in slurmd-node1:slurmd slurmd-node2:slurmd slurmctld:slurmctld munged:munged; do
    name=${entry%%:*} comm=${entry#*:}
    pid=$(pid_of "$name")
    if [ -n "$pid" ] && alive "$pid" "$comm"; then
      kill -TERM "$pid" 2>/dev/null || true
      if ! wait_gone "$pid" "$comm" 150; then
        kill -KILL "$pid" 2>/dev/null || true
        wait_gone "$pid" "$comm" 50 || { echo "slurm.sh: $name (pid $pid) will not die" >&2; return 1; }
      fi
    fi
    rm -f "$state/$name.pid"
  done
  # The SPANK plugin lived in STATE_DIR: slurm.conf must not name it after.
  if [ -f /etc/slurm/slurm.conf ]; then
    sed -i "\|^PlugStackConfig=$state/spank/|d" /etc/slurm/slurm.conf
  fi
  # proctrack/linuxproc follows parent links only: a job's process reparented
  # to PID 1 (its script exited, or was killed by scancel while it ignored
  # TERM) escapes the KillWait SIGKILL. Such leftovers still carry the job
  # environment, which names this cluster.
  local e
  for e in /proc/[0-9]*/environ; do
    pid=${e#/proc/}; pid=${pid%/environ}
    if [ "$pid" != $$ ] && grep -sqxz SLURM_CLUSTER_NAME=vessel-ci "$e"; then
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  # The network, when this STATE_DIR made it ($state/network, written
  # before the first piece): whatever still runs in the nodes' namespaces
  # (a step daemon that lost its slurmd) was started by this cluster's
  # slurmds; then the namespaces, the veths (deleting a namespace deletes
  # the veth end in it, and so the pair) and the bridge. Each only when
  # present: stop is idempotent.
  [ -e "$state/network" ] || return 0
  local n ns
  for n in "${nodes[@]}"; do
    ns=$(netns_of "$n")
    if [ -e "/run/netns/$ns" ]; then
      for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
      ip netns delete "$ns" || return 1
    fi
    ip link delete "$(veth_of "$n")" 2>/dev/null || true # gone already with its peer
  done
  ip link delete "$bridge" 2>/dev/null || true
  for n in "${nodes[@]}" "$bridge"; do
    [ "$n" = "$bridge" ] && ns=$bridge || ns=$(veth_of "$n")
    if ip link show "$ns" >/dev/null 2>&1; then echo "slurm.sh: cannot delete interface $ns" >&2; return 1; fi
  done
  rm -f "$state/network"
}

status() {
  local entry pid rc=0
  for entry in "${daemons[@]}"; do
    pid=$(pid_of "${entry%%:*}")
    if [ -n "$pid" ] && alive "$pid" "${entry#*:}"; then echo "${entry%%:*}: running (pid $pid)"
    else echo "${entry%%:*}: stopped"; rc=1; fi
  done
  [ $rc -eq 0 ] && sinfo -h -o 'node %N: %t' 2>/dev/null
  return $rc
}

fail() {
  echo "slurm.sh: $*" >&2
  local entry
  for entry in "${daemons[@]}"; do
    [ -s "$state/${entry%%:*}.log" ] && { echo "--- $state/${entry%%:*}.log (tail)" >&2; tail -n 20 "$state/${entry%%:*}.log" >&2; }
  done
  stop || true
  exit 1
}

start() {
  local p missing=() d mem_mb entry n ns veth
  for p in munge slurmctld slurmd slurm-client iproute2; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "slurm.sh: missing packages: ${missing[*]} (apt-get install -y ${missing[*]})" >&2
    exit 1
  fi
  [ "$(id -u)" -eq 0 ] || { echo "slurm.sh: start must run as root" >&2; exit 1; }
  if [ -n "${VESSEL_SLURM_VESSEL:-}" ]; then
    [ -x "$VESSEL_SLURM_VESSEL" ] || { echo "slurm.sh: VESSEL_SLURM_VESSEL=$VESSEL_SLURM_VESSEL is not an executable" >&2; exit 1; }
    dpkg-query -W -f='${Status}' libslurm-dev 2>/dev/null | grep -q 'install ok installed' ||
      { echo "slurm.sh: the SPANK plugin needs Slurm's headers: apt-get install -y libslurm-dev" >&2; exit 1; }
  fi

  stop # leftovers of an earlier start with this STATE_DIR
  rm -f "$state"/*.log "$state"/*.out # slurmd appends to its log file
  # Another cluster would hold the ports and the munge socket.
  for d in munged slurmctld slurmd; do
    for p in $(pgrep -x "$d" || true); do
      alive "$p" "$d" || continue
      echo "slurm.sh: $d (pid $p) is running but was not started with state dir $state; stop it first" >&2
      exit 1
    done
  done
  # Leftovers of a start with another STATE_DIR whose daemons are gone
  # (e.g. a killed run): the names are this script's own. A namespace with
  # processes still in it belongs to a cluster that runs: left alone.
  for n in "${nodes[@]}"; do
    ns=$(netns_of "$n")
    if [ -e "/run/netns/$ns" ]; then
      if [ -n "$(ip netns pids "$ns" 2>/dev/null)" ]; then
        echo "slurm.sh: network namespace $ns still has processes ($(ip netns pids "$ns" | tr '\n' ' ')); stop that cluster first" >&2
        exit 1
      fi
      ip netns delete "$ns"
    fi
    ip link delete "$(veth_of "$n")" 2>/dev/null || true
  done
  ip link delete "$bridge" 2>/dev/null || true
  if ip -4 -o addr show | grep -q " $net\."; then
    echo "slurm.sh: an interface outside this script already has an address in $net.0/24:" >&2
    ip -4 -o addr show | grep " $net\." >&2
    exit 1
  fi

  # The network: bridge (the controller's side), and per node a namespace
  # with lo up and one end of a veth pair, the other end in the bridge.
  mkdir -p "$state"
  : >"$state/network" # stop deletes it all from now on, after a failure too
  # nf_call_*tables 0: traffic between the nodes stays out of the host's
  # firewall (with br_netfilter loaded, as on Docker hosts, whose FORWARD
  # policy is DROP, it would be filtered), for this bridge only.
  ip link add "$bridge" type bridge nf_call_iptables 0 nf_call_ip6tables 0 nf_call_arptables 0
  ip addr add "$net.1/24" dev "$bridge"
  ip link set "$bridge" up
  for n in "${nodes[@]}"; do
    ns=$(netns_of "$n") veth=$(veth_of "$n")
    ip netns add "$ns"
    ip link add "$veth" type veth peer name eth0 netns "$ns"
    ip link set "$veth" master "$bridge" up
    ip -n "$ns" addr add "$(node_addr "$n")/24" dev eth0
    ip -n "$ns" link set lo up
    ip -n "$ns" link set eth0 up
  done

  # VESSEL_SLURM_GPUS=N: the node has N GPUs, /dev/nvidia0..N-1 (the fake
  # driver's in the tests), as a site's gres.conf describes them.
  gpus=${VESSEL_SLURM_GPUS:-0}
  gres_types="" node_gres=""
  rm -f /etc/slurm/gres.conf
  if [ "$gpus" -gt 0 ]; then
    gres_types="GresTypes=gpu"
    node_gres="Gres=gpu:$gpus"
    mkdir -p /etc/slurm
    echo "Name=gpu File=/dev/nvidia[0-$((gpus - 1))]" | install -m 0644 /dev/stdin /etc/slurm/gres.conf
  fi
  # slurmd refuses a node whose RealMemory exceeds the real one: stay 10%
  # under (each node reports the whole machine's memory).
  mem_mb=$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 * 0.9 }' /proc/meminfo)
  mkdir -p /etc/slurm "$state"
  # The SPANK plugin, loaded by srun/sbatch/salloc (as the calling user:
  # everything world-readable) and by slurmd's step daemons.
  plugstack=""
  if [ -n "${VESSEL_SLURM_VESSEL:-}" ]; then
    chmod 0755 "$state"
    install -d -m 0755 "$state/spank"
    cc -O2 -Wall -Wextra -Werror -shared -fPIC -o "$state/spank/vessel_spank.so" \
      "$(dirname "$0")/../contrib/spank/vessel_spank.c" || fail "the SPANK plugin did not build"
    chmod 0755 "$state/spank/vessel_spank.so"
    echo "required $state/spank/vessel_spank.so vessel=$(realpath "$VESSEL_SLURM_VESSEL") ${VESSEL_SLURM_SPANK_ARGS:-}" |
      install -m 0644 /dev/stdin "$state/spank/plugstack.conf"
    plugstack="PlugStackConfig=$state/spank/plugstack.conf"
  fi
  # World-readable: srun/sbatch/sinfo read it as the calling user.
  install -m 0644 /dev/stdin /etc/slurm/slurm.conf <<EOF
ClusterName=vessel-ci
SlurmctldHost=localhost($net.1)
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd/%n
# Per node: the PMIx plugin makes its step directories (spmix_appdir_UID_JOB.STEP)
# in TmpFS, and two nodes sharing /tmp would make the same one.
TmpFS=$state/tmp/%n
SlurmdPidFile=$state/slurmd-%n.pidfile
SlurmdLogFile=$state/slurmd-%n.log
SlurmdDebug=${VESSEL_SLURMD_DEBUG:-info}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
$gres_types
$plugstack
NodeName=node[1-2] NodeAddr=$net.[11-12] CPUs=$(nproc) RealMemory=$mem_mb $node_gres State=UNKNOWN
PartitionName=debug Nodes=node[1-2] Default=YES MaxTime=INFINITE State=UP
EOF

  mkdir -p "$state" /run/munge /var/lib/munge /var/log/munge /var/spool/slurmctld /var/spool/slurmd/node1 /var/spool/slurmd/node2
  # The tasks (as the user, in containers too) reach their node's TmpFS.
  chmod 0755 "$state"
  install -d -m 0755 "$state/tmp" "$state/tmp/node1" "$state/tmp/node2"
  chown munge: /run/munge /var/lib/munge /var/log/munge
  chmod 0755 /run/munge # clients (any user) connect to the socket in it
  chown slurm: /var/spool/slurmctld
  if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=128 count=1 status=none
    chown munge: /etc/munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
  fi

  # setsid + redirections: the daemons must not hold the caller's terminal or
  # stdout pipe open (a `$(slurm.sh start)` would never return). setpriv execs,
  # so $! is munged itself.
  setsid setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged -F \
    </dev/null >"$state/munged.log" 2>&1 &
  echo $! >"$state/munged.pid"
  for _ in $(seq 100); do [ -S /run/munge/munge.socket.2 ] && munge -n </dev/null >/dev/null 2>&1 && break; sleep 0.1; done
  munge -n </dev/null >/dev/null 2>&1 || fail "munged did not come up"

  # -c: forget jobs of an earlier cluster kept in StateSaveLocation.
  setsid /usr/sbin/slurmctld -D -c -i </dev/null >"$state/slurmctld.log" 2>&1 &
  echo $! >"$state/slurmctld.pid"
  # Each slurmd in its node's namespaces: nsenter and unshare exec (no
  # fork), and so does sh, so $! is slurmd itself. nsenter --net, not ip
  # netns exec: that one also remounts /sys in a new mount namespace,
  # hiding /sys/fs/cgroup, without which slurmd will not start. The UTS namespace
  # gives each node its own hostname, as real nodes have (Open MPI and
  # PMIx name their session directories in the shared /tmp after it).
  for n in "${nodes[@]}"; do
    setsid nsenter --net="/run/netns/$(netns_of "$n")" unshare --uts \
      sh -c 'hostname "$1" && exec /usr/sbin/slurmd -D -N "$1"' sh "$n" \
      </dev/null >"$state/slurmd-$n.out" 2>&1 &
    echo $! >"$state/slurmd-$n.pid"
  done

  # Bounded by the clock, not a count: sinfo itself may block while the
  # controller is not yet answering.
  SECONDS=0
  while [ $SECONDS -lt 30 ]; do
    case $(timeout 5 sinfo -h -N -o %t 2>/dev/null | sort -u | tr '\n' ' ') in
      "idle ") echo "slurm: nodes node1 ($(node_addr node1)) and node2 ($(node_addr node2)) idle after $SECONDS s (CPUs=$(nproc) RealMemory=$mem_mb each, logs in $state)"; return 0 ;;
      *drain*) fail "node drained: $(sinfo -h -R 2>&1)" ;; # e.g. RealMemory too high
    esac
    for entry in "${daemons[@]}"; do alive "$(pid_of "${entry%%:*}")" "${entry#*:}" || fail "${entry%%:*} exited"; done
    sleep 0.1
  done
  fail "nodes not idle after 30 s: $(sinfo -N 2>&1 | tail -n +2)"
}

case $cmd in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status STATE_DIR" >&2; exit 2 ;;
esac
