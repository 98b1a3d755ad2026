#!/usr/bin/env bash
# Load benchmark: healthscore against a bare tonic-health peer (examples/bare_health.rs), both
# built with the same release profile and measured in the same run, alternating A B A B, with
# h2load and pre-encoded gRPC requests. Prints requests/s, latency and the ratios, then the
# WatchHealth fan-out and the idle footprint.
#
#   scripts/bench.sh                 # defaults
#   REQUESTS=100000 ROUNDS=2 FANOUT="1000 10000" scripts/bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
requests=${REQUESTS:-200000}
rounds=${ROUNDS:-3}
fanout=${FANOUT:-"1000 10000 50000"}
clients=${CLIENTS:-16}
streams=${STREAMS:-32}

if ! command -v h2load >/dev/null; then
  echo "installing h2load (Debian package nghttp2-client)"
  if [ "$(id -u)" = 0 ]; then apt-get install -y -q nghttp2-client >/dev/null; else sudo apt-get install -y -q nghttp2-client >/dev/null; fi
fi
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

cargo build --release --quiet --bin healthscore --example bare_health --example bench_client --example fanout
bin=target/release
work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }

hs_port=$(free_port); peer_port=$(free_port); http_port=$(free_port)
HEALTHSCORE_SERVER__LISTEN="127.0.0.1:$hs_port" HEALTHSCORE_SERVER__SHUTDOWN_GRACE_SECS=0 \
  HEALTHSCORE_HTTP__LISTEN="127.0.0.1:$http_port" \
  HEALTHSCORE_SERVER__MAX_WATCH_STREAMS=60000 HEALTHSCORE_SERVER__MAX_CONCURRENT_STREAMS=2000 \
  HEALTHSCORE_SERVER__MAX_CONCURRENT_REQUESTS=100000 HEALTHSCORE_SERVER__MAX_CONNECTIONS_PER_PEER=1000 \
  HEALTHSCORE_LIMITS__MAX_PUSHES_PER_SOURCE_PER_SEC=1000000 \
  HEALTHSCORE_LOG__LEVEL=warn "$bin/healthscore" serve & hs_pid=$!; pids+=("$hs_pid")
"$bin/examples/bare_health" "127.0.0.1:$peer_port" 2>/dev/null & pids+=($!)
wait_port "$hs_port"; wait_port "$peer_port"; wait_port "$http_port"
"$bin/examples/bench_client" payloads "$work"
"$bin/examples/bench_client" verify "127.0.0.1:$hs_port"

# h2load prints "finished in 1.23s, 81234.56 req/s, ..." and "time for request: min max mean sd".
load() { # port path payload -> "rps mean_latency" ; fails unless every request got HTTP 200
  local out
  # Flow-control windows as real gRPC clients open them (4 MiB a stream, 16 MiB a connection),
  # so large reports are not throttled by h2load's 64 KiB default.
  out=$(h2load -n "$requests" -c "$clients" -m "$streams" -t 1 -w 22 -W 24 -d "$3" \
    -H 'content-type: application/grpc' -H 'te: trailers' "http://127.0.0.1:$1$2")
  local ok; ok=$(echo "$out" | awk '/status codes:/ {print $3}')
  [ "$ok" = "$requests" ] || { echo "$out" >&2; echo "not every request succeeded" >&2; exit 1; }
  echo "$out" | awk '/finished in/ {rps=$4} /time for request:/ {mean=$5} END {print rps, mean}'
}

# An HTTP/1.1 GET: "rps mean_latency"; fails unless every request got an answer: 200, or the
# 503 that /v1/health gives, with the report, while the system is critical.
load_http() { # port path [accept]
  local out
  out=$(h2load --h1 -n "$requests" -c "$clients" -t 1 ${3:+-H "accept: $3"} "http://127.0.0.1:$1$2")
  local ok; ok=$(echo "$out" | awk '/status codes:/ {print $3 + $9}')
  [ "$ok" = "$requests" ] || { echo "$out" >&2; echo "not every request succeeded" >&2; exit 1; }
  echo "$out" | awk '/finished in/ {rps=$4} /time for request:/ {mean=$5} END {print rps, mean}'
}

# An HTTP endpoint against GetSystemHealth on the same state, rounds alternating.
compare_http() { # label path [accept]
  local a_sum=0 b_sum=0
  for round in $(seq "$rounds"); do
    read -r a a_lat < <(load_http "$http_port" "$2" "${3:-}")
    read -r b b_lat < <(load "$hs_port" /healthscore.v1.HealthReports/GetSystemHealth "$work/system.bin")
    printf '  round %d: %-22s %10.0f req/s (mean %s)   %-22s %10.0f req/s (mean %s)\n' \
      "$round" "$1" "$a" "$a_lat" GetSystemHealth "$b" "$b_lat"
    a_sum=$(python3 -c "print($a_sum + $a)"); b_sum=$(python3 -c "print($b_sum + $b)")
  done
  python3 -c "print(f'  {\"$1\"}/GetSystemHealth: ratio {$a_sum / $b_sum:.3f}')"
}

compare() { # label portA pathA payloadA portB pathB payloadB labelA labelB
  local a_sum=0 b_sum=0
  for round in $(seq "$rounds"); do
    read -r a a_lat < <(load "$2" "$3" "$4")
    read -r b b_lat < <(load "$5" "$6" "$7")
    printf '  round %d: %-22s %10.0f req/s (mean %s)   %-22s %10.0f req/s (mean %s)\n' \
      "$round" "$8" "$a" "$a_lat" "$9" "$b" "$b_lat"
    a_sum=$(python3 -c "print($a_sum + $a)"); b_sum=$(python3 -c "print($b_sum + $b)")
  done
  python3 -c "print(f'  {\"$1\"}: ratio {$a_sum / $b_sum:.3f}')"
}

check=/grpc.health.v1.Health/Check
echo "== grpc.health.v1 Check: healthscore vs bare tonic-health (target ratio >= 0.95)"
compare "Check healthscore/peer" "$hs_port" "$check" "$work/check.bin" \
  "$peer_port" "$check" "$work/check.bin" healthscore tonic-health

# The fan-out raises the watch-stream limits (1,000 in all, 100 a connection by default).
echo "== WatchHealth fan-out, fresh state (target: 50,000 streams, p99 < 1 s, < 64 KiB per stream)"
for n in $fanout; do
  "$bin/examples/fanout" "127.0.0.1:$hs_port" "$n" "$hs_pid"
done
last=${fanout##* }
echo "== the same $last streams, each closed as soon as it has the change"
"$bin/examples/fanout" "127.0.0.1:$hs_port" "$last" "$hs_pid" closing

echo "== ReportMetrics of 100 entities as the state grows (target: 100,000 at >= 0.5 of 1,000)"
"$bin/examples/bench_client" scale "127.0.0.1:$hs_port"

"$bin/examples/bench_client" seed "127.0.0.1:$hs_port"
echo "== GetSystemHealth (1,000 entities, full report) vs Check, both on healthscore (target ratio >= 0.5)"
compare "GetSystemHealth/Check" "$hs_port" /healthscore.v1.HealthReports/GetSystemHealth "$work/system.bin" \
  "$hs_port" "$check" "$work/check.bin" GetSystemHealth Check
echo "== GetSystemHealth (1,000 entities, omit_entities) vs Check"
compare "GetSystemHealth compact/Check" "$hs_port" /healthscore.v1.HealthReports/GetSystemHealth "$work/system-compact.bin" \
  "$hs_port" "$check" "$work/check.bin" "GetSystemHealth compact" Check

echo "== HTTP on the same state, against GetSystemHealth (gRPC, HTTP/2)"
compare_http "/metrics" /metrics "application/openmetrics-text"
compare_http "/v1/health" /v1/health
compare_http "/v1/health no entities" "/v1/health?entities=false"

echo "== /metrics rendered afresh with 10,000 entities in state (target < 10 ms)"
"$bin/examples/bench_client" scrape "127.0.0.1:$hs_port" "127.0.0.1:$http_port"

echo "== OTLP export (100 data points a request) next to ReportMetrics (100 entities a request; target ratio >= 0.8)"
"$bin/examples/bench_client" otlp "127.0.0.1:$hs_port"
echo "== the same, pre-encoded from h2load, so neither client's encoding is on the machine's cores"
compare "OTLP export/ReportMetrics" "$hs_port" /opentelemetry.proto.collector.metrics.v1.MetricsService/Export "$work/otlp.bin" \
  "$hs_port" /healthscore.v1.HealthReports/ReportMetrics "$work/report.bin" "OTLP export" ReportMetrics

echo "== ReportMetrics (100 entities a request) vs Check, both on healthscore"
compare "ReportMetrics/Check" "$hs_port" /healthscore.v1.HealthReports/ReportMetrics "$work/report.bin" \
  "$hs_port" "$check" "$work/check.bin" ReportMetrics Check

echo "== WatchHealth fan-out with 1,000 entities and about 100 issues (omit_entities)"
"$bin/examples/fanout" "127.0.0.1:$hs_port" 1000 "$hs_pid" compact

# Each on a fresh server, the flood from a process of its own: with the default per-source
# limit (50 a second), then with none.
for limit in 50 1000000; do
  echo "== Check (4 callers) alone, then while one source floods ReportMetrics from 16 callers (limits.max_pushes_per_source_per_sec = $limit)"
  flood_port=$(free_port)
  HEALTHSCORE_SERVER__LISTEN="127.0.0.1:$flood_port" HEALTHSCORE_SERVER__SHUTDOWN_GRACE_SECS=0 \
    HEALTHSCORE_HTTP__ENABLED=false HEALTHSCORE_HOST__ENABLED=false HEALTHSCORE_LOG__LEVEL=warn \
    HEALTHSCORE_LIMITS__MAX_PUSHES_PER_SOURCE_PER_SEC=$limit "$bin/healthscore" serve & flood_pid=$!
  pids+=("$flood_pid")
  wait_port "$flood_port"
  echo "  Check alone:           $("$bin/examples/bench_client" checks "127.0.0.1:$flood_port" 5)"
  "$bin/examples/bench_client" flood "127.0.0.1:$flood_port" 6 & flooder=$!
  sleep 0.5
  echo "  Check under the flood: $("$bin/examples/bench_client" checks "127.0.0.1:$flood_port" 5)"
  wait "$flooder"
  kill "$flood_pid"
done

echo "== instructions per Check and per push under callgrind (deterministic; machine noise does not move it)"
scripts/callgrind-check.sh

echo "== reading and mapping a 5,000-series Micrometer scrape (target < 5 ms)"
cargo bench --quiet --bench inputs -- --warm-up-time 1 --measurement-time 3 2>/dev/null | grep -A1 "^read and map"

echo "== idle footprint"
scripts/idle-footprint.sh "${IDLE_SECONDS:-60}"
