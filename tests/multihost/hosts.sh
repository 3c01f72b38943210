#!/bin/bash
# tests/multihost/hosts.sh: N "hosts" on this one machine for the multi-host tests. Each host is a
# network namespace PREFIX-hI with one veth link (PREFIX-vI on our side, eth0 inside, address
# 10.77.0.(I+1)/24) to a bridge PREFIX-br; nothing gets an address outside the namespaces, so
# every run can use the same subnet and traffic never leaves them. mpirun reaches the hosts
# through enter.sh (its remote launcher). Names carry the caller's PREFIX (wfmh<pid>x<n>), so
# parallel runs never collide; `down` removes everything and is safe to repeat.
#
#   hosts.sh up PREFIX N        make the hosts (fails, printing why, where namespaces can't be made)
#   hosts.sh down PREFIX        kill what runs in them and remove the hosts and the bridge
#   hosts.sh shape PREFIX       latency 2 ms (netem, where the kernel has it), 1% loss, 400 Mbit/s
#   hosts.sh link PREFIX I up|down   (up returns once host I and host 0 reach each other)
#   hosts.sh kill PREFIX I      SIGKILL every process of host I
#   hosts.sh pids PREFIX        the processes still running in any of the hosts (none: empty)
#   hosts.sh sweep              remove the hosts of runs whose process is gone
set -u
cmd=$1
shift

hosts_of() { ip netns list 2>/dev/null | awk '{print $1}' | grep "^$1-h[0-9]*$"; }
# Runs a command in host $1's network namespace. nsenter changes only the network namespace;
# `ip -n`, `tc -n` and `ip netns exec` also remount / as a slave, which fails inside a chroot
# (CI runs the suite in one), where / is not a mount point.
in_ns() {
  local ns=$1
  shift
  nsenter --net="/run/netns/$ns" "$@"
}
# Succeeds once host $1 reaches address $2: a TCP connection to a port nobody listens on is
# refused (a host that cannot be reached answers "No route to host", or nothing).
reaches() {
  in_ns "$1" env LC_ALL=C timeout 1 bash -c "exec 3<>/dev/tcp/$2/9" 2>&1 | grep -q 'Connection refused'
}
# After `link up` the hosts' neighbour entries for each other are still the failed ones of the
# outage, and a connection made in that window gets "No route to host". An mpirun started then
# (the resume) sometimes never started its daemons: the remote daemon could not call back, and
# mpirun hung on its way out. So `link up` returns only once both ends reach each other.
wait_reachable() {
  local t
  for ((t = 0; t < 50; ++t)); do
    if reaches "$1-h$2" 10.77.0.1 && reaches "$1-h0" "10.77.0.$(($2 + 1))"; then return 0; fi
    sleep 0.2
  done
  echo "hosts.sh: host $2 and host 0 do not reach each other 10 s after the link came up" >&2
  return 1
}
# up and down of concurrent test runs take turns: down removes the /run/netns mount point when
# the last host is gone, and must not do so while another run is adding its first.
if [ -z "${WFMH_LOCKED:-}" ]; then  # sweep's own calls of down already hold it
  exec 9>/tmp/wafer-multihost.lock
  flock 9
  export WFMH_LOCKED=1
fi

case "$cmd" in
  up)
    P=$1 N=$2
    set -e
    ip link add "$P-br" type bridge
    ip link set "$P-br" up
    for ((i = 0; i < N; ++i)); do
      ns="$P-h$i"
      ip netns add "$ns"
      ip link add "$P-v$i" type veth peer name eth0 netns "$ns"
      ip link set "$P-v$i" master "$P-br" up
      in_ns "$ns" ip addr add "10.77.0.$((i + 1))/24" dev eth0
      in_ns "$ns" ip link set eth0 up
      in_ns "$ns" ip link set lo up
      # OpenMPI's out-of-band TCP has no timeout of its own: a connection with unacknowledged
      # data to a vanished host waits for the kernel's retransmission limit (tcp_retries2=15,
      # about 15 minutes). 4 retries give up after 6-12 s; a cluster sets the same on its nodes.
      in_ns "$ns" sh -c 'echo 4 > /proc/sys/net/ipv4/tcp_retries2'
    done
    ;;
  down)
    P=$1
    for ns in $(hosts_of "$P"); do
      pids=$(ip netns pids "$ns" 2>/dev/null)
      [ -n "$pids" ] && kill -9 $pids 2>/dev/null
    done
    for ns in $(hosts_of "$P"); do ip link del "$P-v${ns##*-h}" 2>/dev/null; done
    ip link del "$P-br" 2>/dev/null
    for ns in $(hosts_of "$P"); do ip netns del "$ns"; done  # also removes the veth pairs
    # `ip netns add` made /run/netns a mount point; the last run to leave takes it down, so no
    # mount outlives the tests (and a chroot that ran them can be removed).
    if [ -z "$(ip netns list 2>/dev/null)" ] && mountpoint -q /run/netns; then umount /run/netns 2>/dev/null; fi
    exit 0
    ;;
  shape)
    # tc netem is the one qdisc that delays packets; kernels built without it (this project's CI
    # VM) get the rest: a token-bucket bandwidth cap and random drops by nftables.
    P=$1
    for ns in $(hosts_of "$P"); do
      if in_ns "$ns" tc qdisc add dev eth0 root netem delay 2ms loss 1% rate 400mbit 2>/dev/null; then
        echo "$ns: netem delay 2ms loss 1% rate 400mbit"
      else
        in_ns "$ns" tc qdisc add dev eth0 root tbf rate 400mbit burst 64kb latency 50ms || exit 1
        in_ns "$ns" nft -f - <<'EOF' || exit 1
table inet wfmh {
  chain out { type filter hook output priority 0; oif "eth0" numgen random mod 100 < 1 drop; }
}
EOF
        echo "$ns: no netem in this kernel: no added latency; tbf rate 400mbit; nftables drops 1% of sent packets"
      fi
    done
    ;;
  link)
    ip link set "$1-v$2" "$3" || exit 1
    [ "$3" != up ] || wait_reachable "$1" "$2"
    ;;
  kill)
    pids=$(ip netns pids "$1-h$2")
    [ -n "$pids" ] && kill -9 $pids
    exit 0
    ;;
  pids)
    for ns in $(hosts_of "$1"); do ip netns pids "$ns"; done
    ;;
  sweep)
    for p in $(ip netns list 2>/dev/null | awk '{print $1}' | sed -n 's/^\(wfmh\([0-9]*\)x[0-9]*\)-h[0-9]*$/\1 \2/p' | sort -u | tr ' ' ':'); do
      [ -d "/proc/${p#*:}" ] || "$0" down "${p%%:*}"
    done
    ;;
  *)
    echo "usage: hosts.sh up|down|shape|link|kill|pids|sweep ..." >&2
    exit 2
    ;;
esac
