#!/usr/bin/env bash
# Idle footprint of `healthscore serve` with the host sampler at its default interval:
# CPU time and RSS over a window (default 60 s), read from /proc. Targets: < 0.5% of one core,
# < 20 MiB RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
cargo build --release --quiet
bin=target/release/healthscore
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
HEALTHSCORE_SERVER__LISTEN="127.0.0.1:$port" HEALTHSCORE_HTTP__LISTEN=127.0.0.1:0 HEALTHSCORE_SERVER__SHUTDOWN_GRACE_SECS=0 \
  "$bin" serve 2>/dev/null &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
ticks=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$pid/status"; }
sleep 5   # past start-up and the first samples
start=$(cpu_ticks)
sleep "$seconds"
end=$(cpu_ticks)
rss=$(rss_kib)
interval=5
samples=$(( seconds / interval ))
python3 - "$start" "$end" "$ticks" "$seconds" "$rss" "$samples" <<'PY'
import sys
start, end, ticks, seconds, rss, samples = map(float, sys.argv[1:])
cpu_s = (end - start) / ticks
print(f"idle over {seconds:.0f} s: CPU {cpu_s * 1000:.0f} ms = {cpu_s / seconds * 100:.3f}% of one core (target < 0.5%)")
print(f"RSS {rss / 1024:.1f} MiB (target < 20 MiB)")
print(f"upper bound per host-sampler tick (all idle CPU / {samples:.0f} ticks): {cpu_s / samples * 1000:.2f} ms")
PY
