#!/usr/bin/env bash
# The dashboard (GET / on the HTTP listener) in a real headless Chromium: starts the server
# ($HEALTHSCORE_BIN, default target/debug/healthscore) scraping one file_sd target with a group
# label (a Python http.server), pushes a saturated pool and runs
# .ci/dashboard_test.py, which pushes again, stops the server and starts it again. Installs what
# it needs: Debian's chromium and chromium-driver (apt-get), selenium into target/ci-venv (PyPI).
# Screenshots: target/dashboard-360.png, target/dashboard-1280.png, target/dashboard-1280-dark.png.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

bin=$(realpath -e "${HEALTHSCORE_BIN:-target/debug/healthscore}") || {
  echo "dashboard.sh: no server binary at ${HEALTHSCORE_BIN:-target/debug/healthscore}" >&2
  exit 1
}

echo "--- tools (Debian, PyPI)"
debs=(chromium chromium-driver)
missing=()
for deb in "${debs[@]}"; do
  [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$deb" 2>/dev/null)" = "ii " ] || missing+=("$deb")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
venv="$root/target/ci-venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check selenium==4.51.0
for tool in /usr/bin/chromium /usr/bin/chromedriver; do
  [ -x "$tool" ] || { echo "dashboard.sh: $tool is not installed" >&2; exit 1; }
done
"$venv/bin/python" -c 'import selenium' || { echo "dashboard.sh: selenium is not installed" >&2; exit 1; }
/usr/bin/chromium --version
/usr/bin/chromedriver --version

scratch=$(mktemp -d)
server=
finish() {
  status=$?
  [ -n "${app:-}" ] && kill "$app" 2>/dev/null
  if [ -n "$server" ]; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  if [ "$status" -ne 0 ]; then
    for log in "$scratch"/server*.log; do
      [ -s "$log" ] && echo "--- $(basename "$log")" && cat "$log"
    done
  fi
  rm -rf "$scratch"
}
trap finish EXIT

free_port() {
  "$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
grpc="127.0.0.1:$(free_port)"
http="127.0.0.1:$(free_port)"
export HEALTHSCORE_HTTP__LISTEN="$http" HEALTHSCORE_HOST__ENABLED=false \
  HEALTHSCORE_SERVER__SHUTDOWN_GRACE_SECS=0
# A scraped app listed in a file_sd file with a group label, which the entity rows must show.
mkdir "$scratch/app"
cat >"$scratch/app/prometheus" <<'EOF'
hikaricp_connections_active{pool="labelledDB"} 2.0
hikaricp_connections_idle{pool="labelledDB"} 6.0
hikaricp_connections_max{pool="labelledDB"} 32.0
EOF
app_port=$(free_port)
"$venv/bin/python" -m http.server --bind 127.0.0.1 --directory "$scratch/app" "$app_port" \
  >"$scratch/app.log" 2>&1 &
app=$!
cat >"$scratch/targets.json" <<EOF
[{"targets": ["127.0.0.1:$app_port"], "labels": {"__metrics_path__": "/prometheus", "team": "payments"}}]
EOF
cat >"$scratch/healthscore.toml" <<EOF
[[scrape]]
name = "apps"
file_sd = ["$scratch/targets.json"]
refresh_secs = 1
interval_secs = 1
timeout_secs = 1
profile = "micrometer"
EOF
# The test stops this server to see the page notice, then starts it again with the same command.
start="exec '$bin' serve --config '$scratch/healthscore.toml' --listen '$grpc' 2>>'$scratch/server-restarted.log'"
"$bin" serve --config "$scratch/healthscore.toml" --listen "$grpc" 2>"$scratch/server.log" &
server=$!
"$venv/bin/python" - "http://$http/livez" <<'EOF'
import sys, time, urllib.request
for _ in range(50):
    try:
        urllib.request.urlopen(sys.argv[1], timeout=1)
        sys.exit(0)
    except OSError:
        time.sleep(0.2)
sys.exit(f"dashboard.sh: {sys.argv[1]} does not answer")
EOF

echo "--- push: a saturated pool (DS_POOL_SATURATED, critical) from app-1"
echo '{"datasources": [{"name": "mainDB", "active": 31, "max": 32}]}' >"$scratch/saturated.json"
"$bin" push --addr "$grpc" --source app-1 --ttl 60s "$scratch/saturated.json"

echo "--- the dashboard in headless Chromium"
started=$(date +%s)
"$venv/bin/python" .ci/dashboard_test.py --url "http://$http/" --bin "$bin" --grpc "$grpc" \
  --server-pid "$server" --restart "$start" --out "$root/target"
echo "dashboard test took $(($(date +%s) - started)) s; screenshots in target/dashboard-*.png"
