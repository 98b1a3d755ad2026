#!/usr/bin/env bash
# Memory per source: a release server's RSS before and after 10,000 sources (each the shape of
# a scraped app: 5 pools, one of them saturated) have pushed once, and the cost per source.
set -euo pipefail
cd "$(dirname "$0")/.."
count=${SOURCES:-10000}
cargo build --release --quiet --bin healthscore --example bench_client
bin=target/release
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
HEALTHSCORE_SERVER__LISTEN="127.0.0.1:$port" HEALTHSCORE_HTTP__ENABLED=false HEALTHSCORE_HOST__ENABLED=false \
  HEALTHSCORE_LOG__LEVEL=warn HEALTHSCORE_LIMITS__MAX_TTL_SECS=3600 "$bin/healthscore" serve &
hs=$!
trap 'kill $hs 2>/dev/null || true' EXIT
for _ in $(seq 100); do "$bin/healthscore" probe --addr "127.0.0.1:$port" >/dev/null 2>&1 && break; sleep 0.1; done
rss() { awk '/^VmRSS/ {print $2}' "/proc/$hs/status"; }
before=$(rss)
"$bin/examples/bench_client" sources "127.0.0.1:$port" "$count"
sleep 6 # one malloc_trim period
after=$(rss)
echo "RSS $((before / 1024)) MiB with no source, $((after / 1024)) MiB with $count sources: $(( (after - before) / count )) KiB per source"
