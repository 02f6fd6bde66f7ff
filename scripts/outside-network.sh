#!/usr/bin/env bash
# The "outside" for the network: 'egress' tests, made on this machine (tests send traffic
# to nothing else): a network namespace `vpr-outside` joined to the host by a veth pair,
# the host at 198.18.0.1/24 and the outside at 198.18.0.2/24 (the benchmarking range),
# running a small HTTP server (test/support/outside-server.mjs, port 8080) and dnsmasq,
# which answers the test-only name outside.vpr.test with 198.18.0.2 and forwards every
# other name to the host's own nameservers.
#
#   sudo scripts/outside-network.sh up              # the namespace, the server, dnsmasq
#   sudo scripts/outside-network.sh up --resolver   # ...and dnsmasq first in /etc/resolv.conf
#   sudo scripts/outside-network.sh down            # all of it gone, /etc/resolv.conf restored
#
# Sandboxes resolve names through the host's resolvers, so outside.vpr.test resolves
# in them only with --resolver (or with /run/vpr-outside/resolv.conf bound over
# /etc/resolv.conf in a mount namespace of the test run's own, which leaves the
# machine's resolver alone:
#   sudo unshare -m sh -c 'mount --bind /run/vpr-outside/resolv.conf /etc/resolv.conf && exec runuser -u $USER -- npx vitest run ...').
# Needs iproute2, dnsmasq (dnsmasq-base) and node; run as root.
set -euo pipefail
ns=vpr-outside
state=/run/vpr-outside
here=$(cd "$(dirname "$0")/.." && pwd)

down() {
  for pidfile in "$state"/*.pid; do
    [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
  done
  if [ -f "$state/resolv.conf.orig" ]; then
    cat "$state/resolv.conf.orig" > /etc/resolv.conf
  fi
  ip netns del "$ns" 2>/dev/null || true
  ip link del vpr-out0 2>/dev/null || true
  rm -rf "$state"
}

up() {
  down
  mkdir -p "$state"
  ip netns add "$ns"
  ip link add vpr-out0 type veth peer name vpr-out1
  ip link set vpr-out1 netns "$ns"
  ip addr add 198.18.0.1/24 dev vpr-out0
  ip link set vpr-out0 up
  ip -n "$ns" addr add 198.18.0.2/24 dev vpr-out1
  ip -n "$ns" link set vpr-out1 up
  ip -n "$ns" link set lo up
  ip -n "$ns" route add default via 198.18.0.1
  ip netns exec "$ns" setsid node "$here/test/support/outside-server.mjs" 198.18.0.2 8080 </dev/null >"$state/server.log" 2>&1 &
  echo $! > "$state/server.pid"
  # the host's own nameservers stay the upstream for every other name
  local upstream=()
  for server in $(awk '$1 == "nameserver" { print $2 }' /etc/resolv.conf); do
    [ "$server" = 198.18.0.2 ] || upstream+=(--server="$server")
  done
  ip netns exec "$ns" dnsmasq --no-resolv --no-hosts --bind-interfaces --listen-address=198.18.0.2 \
    --local=/vpr.test/ --host-record=outside.vpr.test,198.18.0.2 "${upstream[@]}" --pid-file="$state/dnsmasq.pid" --user=root
  { echo "nameserver 198.18.0.2"; grep -v '^nameserver 198\.18\.0\.2$' /etc/resolv.conf || true; } > "$state/resolv.conf"
  if [ "${1:-}" = --resolver ]; then
    cp /etc/resolv.conf "$state/resolv.conf.orig"
    cat "$state/resolv.conf" > /etc/resolv.conf
  fi
  for _ in $(seq 1 50); do
    curl -fsS --max-time 1 http://198.18.0.2:8080/hello >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -fsS --max-time 2 http://198.18.0.2:8080/hello
}

case "${1:-}" in
  up) shift; up "$@" ;;
  down) down ;;
  *) echo "usage: $0 up [--resolver] | down" >&2; exit 2 ;;
esac
