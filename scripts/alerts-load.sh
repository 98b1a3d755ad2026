#!/usr/bin/env bash
# What 10,000 issues at once cost while healthscore posts them to a real Alertmanager (Debian's
# `prometheus-alertmanager`, installed if missing): Check p50/p99 from 4 callers idle, then for
# the 10 s after one push of 10,000 saturated pools, and the server's RSS before and after; first,
# a server without [alerting] given the same push, so that what the alert queues hold is the
# difference. Release build; the Check figures come from one server in one run.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v prometheus-alertmanager >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus-alertmanager >/dev/null
fi
cargo build --release --quiet --bin healthscore --example bench_client
bin=target/release
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rss() { awk '/^VmRSS/ {printf "%.1f MiB", $2 / 1024}' "/proc/$1/status"; }

am_port=$(free_port)
cat >"$work/am.yml" <<EOF
route: {receiver: none}
receivers: [{name: none}]
EOF
prometheus-alertmanager --config.file="$work/am.yml" --storage.path="$work/am" \
  --web.listen-address="127.0.0.1:$am_port" --cluster.listen-address= >"$work/am.log" 2>&1 &
pids+=($!)
python3 - "$work/pools.json" <<'EOF'
import json, sys
pools = [{"name": f"pool-{i}", "active": 31, "max": 32} for i in range(10_000)]
json.dump({"datasources": pools}, open(sys.argv[1], "w"))
EOF

# One server, with `$1` as its last config lines: sets `hs`, `port` and `http`.
start() {
  port=$(free_port)
  http=$(free_port)
  cat >"$work/healthscore.toml" <<EOF
[server]
listen = "127.0.0.1:$port"
[http]
listen = "127.0.0.1:$http"
[host]
enabled = false
$1
EOF
  "$bin/healthscore" serve --config "$work/healthscore.toml" 2>"$work/healthscore.log" &
  hs=$!
  pids+=("$hs")
  for _ in $(seq 100); do "$bin/healthscore" probe --addr "127.0.0.1:$port" >/dev/null 2>&1 && return; sleep 0.1; done
  echo "alerts-load.sh: healthscore did not start" >&2
  cat "$work/healthscore.log" >&2
  exit 1
}

# The same push on a server that alerts nobody: what the 10,000 reports alone cost.
start ""
echo "Without [alerting]: RSS idle $(rss "$hs")"
"$bin/healthscore" push --addr "127.0.0.1:$port" --source load --ttl 600s "$work/pools.json"
sleep 10
echo "Without [alerting]: RSS 10 s after 10,000 issues $(rss "$hs")"
kill "$hs"

start "[alerting]
alertmanagers = [\"http://127.0.0.1:$am_port\"]
resend_secs = 10"
echo "RSS idle: $(rss "$hs")"
echo "Check idle:                $("$bin/examples/bench_client" checks "127.0.0.1:$port" 5)"
"$bin/healthscore" push --addr "127.0.0.1:$port" --source load --ttl 600s "$work/pools.json"
echo "Check after 10,000 issues: $("$bin/examples/bench_client" checks "127.0.0.1:$port" 10)"
echo "RSS after: $(rss "$hs")"
curl -fsS "127.0.0.1:$http/metrics" | grep -E '^healthscore_alerts_(sent|dropped)_total'
listed=$(curl -fsS "127.0.0.1:$am_port/api/v2/alerts" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
echo "Alertmanager lists $listed alerts"
