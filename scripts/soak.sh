#!/usr/bin/env bash
# Soak: mixed load for MINUTES (default 30) against a release build: 100 sources pushing twice
# a second, 100 WatchHealth streams, Check in a loop (examples/soak.rs). RSS is sampled every
# 10 s; the run ends with SIGTERM. Fails on any client error, an unclean exit, or RSS growth of
# more than 10% between the end of the warm-up (the first 2 minutes, or a fifth of short runs)
# and the end. Not run in CI.
#
#   scripts/soak.sh [MINUTES]
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-30}
seconds=$((minutes * 60))
warmup=$((seconds / 5 < 120 ? seconds / 5 : 120))
cargo build --release --quiet --bin healthscore --example soak
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
HEALTHSCORE_SERVER__LISTEN="127.0.0.1:$port" HEALTHSCORE_SERVER__SHUTDOWN_GRACE_SECS=1 \
  HEALTHSCORE_LOG__LEVEL=warn target/release/healthscore serve & pid=$!
trap 'kill "$pid" 2>/dev/null || true' EXIT
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
target/release/examples/soak "127.0.0.1:$port" "$seconds" & load=$!
rss() { awk '/^VmRSS/ {print $2}' "/proc/$pid/status"; }
echo "  time    RSS (KiB)"
samples=()
start=$(date +%s)
while kill -0 "$load" 2>/dev/null; do
  elapsed=$(( $(date +%s) - start ))
  value=$(rss)
  samples+=("$elapsed:$value")
  printf '%6ss  %9s\n' "$elapsed" "$value"
  sleep 10
done
wait "$load"
kill -TERM "$pid"
wait "$pid"
echo "server exited 0 after SIGTERM"
python3 - "$warmup" "${samples[@]}" <<'PY'
import sys
warmup = int(sys.argv[1])
samples = [tuple(map(int, s.split(":"))) for s in sys.argv[2:]]
after = [rss for t, rss in samples if t >= warmup]
if len(after) < 2:
    sys.exit("too few samples after the warm-up")
base, end = after[0], max(after[-3:])
growth = (end - base) / base
print(f"RSS after warm-up {base} KiB, at the end {end} KiB: growth {growth:+.1%} (limit +10%)")
sys.exit(1 if growth > 0.10 else 0)
PY
