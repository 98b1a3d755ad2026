#!/usr/bin/env bash
# The MCP face through the official MCP Python SDK (`mcp` from PyPI, pinned in
# .ci/mcp/requirements.txt): .ci/mcp/test_mcp.py against a real server ($HEALTHSCORE_BIN, default
# target/debug/healthscore), over streamable HTTP (http://HTTPADDR/mcp) and over stdio
# (`healthscore mcp --addr GRPCADDR`, which bridges to the server's gRPC port), each in the
# SDK's two protocol eras: the initialize handshake (2025-11-25, a stateful session,
# resources/subscribe) and 2026-07-28 (server/discover, subscriptions/listen). Starts the server
# on free ports and pushes a healthy state: a pool at 20% from app-1 and an entity in every other
# subsystem from app-2 (a degraded executor, warning; a web server with many connections, info).
# The test compares every tool and resource with GET /v1/health[/key], and pushes the pool
# saturated (datasources critical) while subscribed to health://datasources, then healthy again
# before the next pass. Installs what it needs (the SDK into target/ci-venv); a missing tool
# fails the check, nothing is skipped.
# Env: HEALTHSCORE_BIN. The tool health_get_history is required (MCP_EXPECT_HISTORY=1).
set -euo pipefail
export MCP_EXPECT_HISTORY=1
cd "$(dirname "$0")/.."
root=$(pwd)

bin=$(realpath -e "${HEALTHSCORE_BIN:-target/debug/healthscore}") || {
  echo "mcp.sh: no server binary at ${HEALTHSCORE_BIN:-target/debug/healthscore}" >&2
  exit 1
}

echo "--- tools (PyPI)"
venv="$root/target/ci-venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r .ci/mcp/requirements.txt
"$venv/bin/python" -c 'import mcp.client.stdio, mcp.client.streamable_http' || {
  echo "mcp.sh: the MCP Python SDK is not installed" >&2
  exit 1
}
"$venv/bin/python" - <<'EOF'
from importlib.metadata import version
from mcp.types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS
print(f"mcp {version('mcp')}: protocols {', '.join(HANDSHAKE_PROTOCOL_VERSIONS)} (initialize),",
      f"{', '.join(MODERN_PROTOCOL_VERSIONS)} (server/discover)")
EOF
"$bin" --version

scratch=$(mktemp -d "${TMPDIR:-/tmp}/healthscore-mcp.XXXXXX")
server=
finish() {
  local status=$?
  if [ -n "$server" ]; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  if [ "$status" -ne 0 ]; then
    for log in "$scratch"/*.log; do
      [ -s "$log" ] && echo "--- $(basename "$log")" && cat "$log"
    done
  fi
  rm -rf "$scratch"
  exit "$status"
}
trap finish EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

free_port() {
  "$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
grpc="127.0.0.1:$(free_port)"
http="127.0.0.1:$(free_port)"
HEALTHSCORE_HTTP__LISTEN="$http" HEALTHSCORE_HOST__ENABLED=true HEALTHSCORE_SERVER__SHUTDOWN_GRACE_SECS=0 \
  "$bin" serve --listen "$grpc" 2>"$scratch/server.log" &
server=$!
"$venv/bin/python" - "http://$http/livez" <<'EOF'
import sys, time, urllib.request
for _ in range(50):
    try:
        urllib.request.urlopen(sys.argv[1], timeout=1)
        sys.exit(0)
    except OSError:
        time.sleep(0.2)
sys.exit(f"mcp.sh: {sys.argv[1]} does not answer")
EOF

echo "--- push: a healthy pool from app-1, the other subsystems from app-2"
# The pool the test turns critical (DS_POOL_SATURATED, DS_POOL_THREADS_AWAITING) and back.
echo '{"datasources": [{"name": "mainDB", "active": 2, "idle": 8, "max": 10}]}' >"$scratch/healthy.json"
echo '{"datasources": [{"name": "mainDB", "active": 10, "idle": 0, "max": 10, "threadsAwaiting": 5}]}' \
  >"$scratch/critical.json"
cat >"$scratch/others.json" <<'EOF'
{"caches": [{"name": "users", "hits": 900, "misses": 100, "size": 50, "maxSize": 100}],
 "watchers": [{"name": "config", "running": true}],
 "schedulers": [{"name": "cron", "started": true, "tasks": 3}],
 "executors": [{"name": "jobs", "state": "EXECUTOR_STATE_DEGRADED", "active": 2, "maxThreads": 8}],
 "webServers": [{"name": "undertow", "busyWorkers": 1, "maxWorkers": 10, "connections": 150}],
 "runtimes": [{"name": "jvm", "heapUsedBytes": 100000000, "heapMaxBytes": 1000000000}],
 "performance": [{"name": "app"}]}
EOF
"$bin" push --addr "$grpc" --source app-2 --ttl 600s "$scratch/others.json"
"$bin" push --addr "$grpc" --source app-1 --ttl 600s "$scratch/healthy.json"

echo "--- MCP: streamable HTTP at http://$http/mcp, stdio through \`healthscore mcp --addr $grpc\`"
"$bin" mcp --help >/dev/null || {
  echo "mcp.sh: $bin has no \`mcp\` subcommand (the stdio transport)" >&2
  exit 1
}
started=$(date +%s)
"$venv/bin/python" .ci/mcp/test_mcp.py --http "http://$http" --grpc "$grpc" --bin "$bin" \
  --healthy "$scratch/healthy.json" --critical "$scratch/critical.json" --logs "$scratch"
echo "MCP test took $(($(date +%s) - started)) s"
