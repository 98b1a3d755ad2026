#!/usr/bin/env bash
# Memory under read load: 1,000 entities with about 100 issues, then GetSystemHealth with 512
# calls in flight (h2load: 16 connections x 32 streams). Prints the peak RSS during the load and
# the RSS ten seconds after it, for healthscore and for a bare tonic server sending the same
# report (examples/bare_health.rs with the saved answer), alternating A B A B.
# Targets: peak <= 64 MiB (the sidecar's limit) and <= 1.3x the peer's; after <= 1.2x the peer's.
#
#   scripts/read-memory.sh               # ROUNDS=2 REQUESTS=200000
set -euo pipefail
cd "$(dirname "$0")/.."
requests=${REQUESTS:-200000}
rounds=${ROUNDS:-2}
if ! command -v h2load >/dev/null; then
  echo "h2load is missing: apt-get install nghttp2-client" >&2; exit 1
fi
cargo build --release --quiet --bin healthscore --example bench_client --example bare_health
bin=target/release
work=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }
"$bin/examples/bench_client" payloads "$work"

start_healthscore() { # port
  HEALTHSCORE_SERVER__LISTEN="127.0.0.1:$1" HEALTHSCORE_HTTP__LISTEN=127.0.0.1:0 HEALTHSCORE_LOG__LEVEL=warn \
    "$bin/healthscore" serve & pid=$!
  wait_port "$1"
  "$bin/examples/bench_client" seed "127.0.0.1:$1" "$work/answer.bin" >/dev/null
}
start_peer() { # port
  "$bin/examples/bare_health" "127.0.0.1:$1" "$work/answer.bin" 2>/dev/null & pid=$!
  wait_port "$1"
}

measure() { # name start-function -> "peak after" in KiB, printed with the name
  local port; port=$(free_port)
  "$2" "$port"
  local before; before=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
  h2load -n "$requests" -c 16 -m 32 -t 1 -w 22 -W 24 -d "$work/system.bin" \
    -H 'content-type: application/grpc' -H 'te: trailers' \
    "http://127.0.0.1:$port/healthscore.v1.HealthReports/GetSystemHealth" \
    | grep -q "status codes: $requests 2xx" || { echo "$1: not every call succeeded" >&2; exit 1; }
  local peak; peak=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status")
  sleep 10
  local after; after=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
  printf '  %-12s RSS before %5.1f MiB, peak %5.1f MiB, 10 s after %5.1f MiB\n' \
    "$1" "$(echo "$before/1024" | bc -l)" "$(echo "$peak/1024" | bc -l)" "$(echo "$after/1024" | bc -l)" >&2
  echo "$peak $after"
}

# The peer needs the answer healthscore gives, so healthscore goes first in every round.
hs_peak=0 hs_after=0 peer_peak=0 peer_after=0
for round in $(seq "$rounds"); do
  echo "round $round" >&2
  measure healthscore start_healthscore >"$work/figures"; read -r p a <"$work/figures"
  hs_peak=$((hs_peak + p)); hs_after=$((hs_after + a))
  measure tonic start_peer >"$work/figures"; read -r p a <"$work/figures"
  peer_peak=$((peer_peak + p)); peer_after=$((peer_after + a))
done
python3 -c "
hp, ha, pp, pa = $hs_peak / $rounds / 1024, $hs_after / $rounds / 1024, $peer_peak / $rounds / 1024, $peer_after / $rounds / 1024
print(f'healthscore peak {hp:.1f} MiB, after {ha:.1f} MiB; bare tonic peak {pp:.1f} MiB, after {pa:.1f} MiB')
print(f'ratios: peak {hp / pp:.2f}x (target <= 1.3), after {ha / pa:.2f}x (target <= 1.2); peak target <= 64 MiB')"
