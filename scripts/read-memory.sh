#!/usr/bin/env bash
# Memory under read load: 1,000 entities with about 100 issues, then GetSystemHealth with 512
# calls in flight (h2load: 16 connections x 32 streams). Prints the peak RSS during the load and
# the RSS ten seconds after it. Targets: peak <= 64 MiB (the sidecar's limit), <= 40 MiB after.
#
#   scripts/read-memory.sh [BINARY]      # default: target/release/healthscore (built if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-target/release/healthscore}
requests=${REQUESTS:-200000}
if ! command -v h2load >/dev/null; then
  echo "h2load is missing: apt-get install nghttp2-client" >&2; exit 1
fi
if [ "$#" -eq 0 ]; then
  cargo build --release --quiet --bin healthscore --example bench_client
fi
work=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
HEALTHSCORE_SERVER__LISTEN="127.0.0.1:$port" HEALTHSCORE_HTTP__LISTEN=127.0.0.1:0 HEALTHSCORE_LOG__LEVEL=warn "$bin" serve & pid=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
target/release/examples/bench_client payloads "$work"
target/release/examples/bench_client seed "127.0.0.1:$port"
rss() { awk '/^VmRSS/ {print int($2/1024)}' "/proc/$pid/status"; }
echo "RSS before load: $(rss) MiB"
out=$(h2load -n "$requests" -c 16 -m 32 -t 1 -w 22 -W 24 -d "$work/system.bin" \
  -H 'content-type: application/grpc' -H 'te: trailers' \
  "http://127.0.0.1:$port/healthscore.v1.HealthReports/GetSystemHealth")
echo "$out" | grep -E "finished in|status codes"
peak=$(awk '/^VmHWM/ {print int($2/1024)}' "/proc/$pid/status")
sleep 10
after=$(rss)
echo "peak RSS under load: $peak MiB (target <= 64); RSS 10 s after: $after MiB (target <= 40)"
