#!/usr/bin/env bash
# Instructions per call counted by valgrind's callgrind, which machine noise does not move:
# grpc.health.v1 Check on healthscore against the bare tonic-health peer, and an OTLP export of
# 100 data points against a ReportMetrics of 100 entities on healthscore (issue 29's OTLP row,
# by instructions rather than requests/s).
set -euo pipefail
cd "$(dirname "$0")/.."
requests=${CALLGRIND_REQUESTS:-20000}
pushes=${CALLGRIND_PUSHES:-2000}
cargo build --release --quiet --bin healthscore --example bare_health --example bench_client
bin=target/release
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bin/examples/bench_client" payloads "$work"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 400); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }

count() { # name port path payload calls environment command... -> instructions per call, after a warm-up
  local name=$1 port=$2 path=$3 payload=$4 calls=$5 environment=$6; shift 6
  # shellcheck disable=SC2086 # the environment is VAR=value words
  env $environment valgrind --tool=callgrind --callgrind-out-file="$work/$name" "$@" 2>/dev/null &
  local pid=$!
  wait_port "$port"
  local load=(h2load -c 4 -m 8 -t 1 -d "$payload" -H 'content-type: application/grpc' -H 'te: trailers' "http://127.0.0.1:$port$path")
  "${load[@]}" -n $(( calls / 4 )) >/dev/null
  callgrind_control -z "$pid" >/dev/null
  "${load[@]}" -n "$calls" | grep -q "status codes: $calls 2xx" || { echo "$name: not every call succeeded" >&2; exit 1; }
  callgrind_control -d "$pid" >/dev/null
  sleep 1
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  local total
  total=$(grep -h '^totals:' "$work/$name".* | tail -1 | awk '{print $2}')
  echo $(( total / calls ))
}

# healthscore's settings for a port, pushes unlimited.
settings() { # port
  echo "HEALTHSCORE_SERVER__LISTEN=127.0.0.1:$1 HEALTHSCORE_HTTP__ENABLED=false HEALTHSCORE_HOST__ENABLED=false" \
    "HEALTHSCORE_LIMITS__MAX_PUSHES_PER_SOURCE_PER_SEC=1000000 HEALTHSCORE_LOG__LEVEL=warn"
}

check=/grpc.health.v1.Health/Check
port=$(free_port)
hs=$(count healthscore "$port" "$check" "$work/check.bin" "$requests" "$(settings "$port")" "$bin/healthscore" serve)
port=$(free_port)
peer=$(count peer "$port" "$check" "$work/check.bin" "$requests" "" "$bin/examples/bare_health" "127.0.0.1:$port")
python3 -c "print(f'  instructions per Check: healthscore {$hs}, tonic-health {$peer}; throughput ratio (peer/healthscore cost) {$peer / $hs:.3f}')"

port=$(free_port)
otlp=$(count otlp "$port" /opentelemetry.proto.collector.metrics.v1.MetricsService/Export "$work/otlp.bin" "$pushes" "$(settings "$port")" "$bin/healthscore" serve)
port=$(free_port)
push=$(count push "$port" /healthscore.v1.HealthReports/ReportMetrics "$work/report.bin" "$pushes" "$(settings "$port")" "$bin/healthscore" serve)
python3 -c "print(f'  instructions per call: OTLP export of 100 points {$otlp}, ReportMetrics of 100 entities {$push}; points/entities ratio (push/export cost) {$push / $otlp:.3f} (target >= 0.8)')"
