#!/usr/bin/env bash
# Instructions per grpc.health.v1 Check, healthscore vs the bare tonic-health peer, counted by
# valgrind's callgrind. Unlike requests/s, the count does not move with machine noise.
set -euo pipefail
cd "$(dirname "$0")/.."
requests=${CALLGRIND_REQUESTS:-20000}
cargo build --release --quiet --bin healthscore --example bare_health --example bench_client
bin=target/release
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bin/examples/bench_client" payloads "$work"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 400); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }

count() { # name port command... -> instructions per Check, after a warm-up
  local name=$1 port=$2; shift 2
  valgrind --tool=callgrind --callgrind-out-file="$work/$name" "$@" 2>/dev/null &
  local pid=$!
  wait_port "$port"
  local load=(h2load -c 4 -m 8 -t 1 -d "$work/check.bin" -H 'content-type: application/grpc' -H 'te: trailers' "http://127.0.0.1:$port/grpc.health.v1.Health/Check")
  "${load[@]}" -n 5000 >/dev/null
  callgrind_control -z "$pid" >/dev/null
  "${load[@]}" -n "$requests" | grep -q "status codes: $requests 2xx" || { echo "$name: not every Check succeeded" >&2; exit 1; }
  callgrind_control -d "$pid" >/dev/null
  sleep 1
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  local total
  total=$(grep -h '^totals:' "$work/$name".* | tail -1 | awk '{print $2}')
  echo $(( total / requests ))
}

hs_port=$(free_port)
hs=$(HEALTHSCORE_SERVER__LISTEN="127.0.0.1:$hs_port" HEALTHSCORE_HTTP__ENABLED=false HEALTHSCORE_HOST__ENABLED=false HEALTHSCORE_LOG__LEVEL=warn \
  count healthscore "$hs_port" "$bin/healthscore" serve)
peer_port=$(free_port)
peer=$(count peer "$peer_port" "$bin/examples/bare_health" "127.0.0.1:$peer_port")
python3 -c "print(f'  instructions per Check: healthscore {$hs}, tonic-health {$peer}; throughput ratio (peer/healthscore cost) {$peer / $hs:.3f}')"
