#!/usr/bin/env bash
# healthscore under a real Prometheus (Debian's `prometheus` package: prometheus and promtool).
#   1. promtool check rules / test rules on deploy/prometheus/rules.yaml and rules.test.yaml;
#      deploy/ checks that need no server (.ci/check_deploy.py static): manifests, the
#      ServiceMonitor, the scrape config's pod relabeling, the Grafana dashboard; then
#      `promtool check config` on the scrape config (less its kubernetes_sd jobs: Debian builds
#      Prometheus without Kubernetes discovery).
#   2. `healthscore config check` on the manifests' ConfigMaps and env; healthscore serve with
#      its HTTP listener; a push that makes datasources warning at 75 and
#      a source that goes stale; /metrics in the Prometheus text format through
#      `promtool check metrics` (any lint output fails), and in OpenMetrics through a strict
#      parser and the values pushed.
#   3. prometheus scraping that healthscore every second: a PromQL query must answer
#      healthscore_subsystem_score{subsystem="datasources"} = 75, the rules' alerts for this
#      state must be pending, and every dashboard query must return data.
# A missing tool fails the run; nothing is skipped. Usage: bash .ci/prometheus.sh
# Env: HEALTHSCORE_BIN (default target/debug/healthscore, built by `cargo test`/`cargo build`),
#      CI_VENV (default target/ci-venv, shared with .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bin="${HEALTHSCORE_BIN:-$root/target/debug/healthscore}"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/healthscore-prom.XXXXXX")
hs_pid=""
prom_pid=""
cleanup() {
  local rc=$?
  for pid in "$prom_pid" "$hs_pid"; do
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  if [ "$rc" -ne 0 ]; then
    for log in "$tmp/healthscore.log" "$tmp/prometheus.log"; do
      if [ -s "$log" ]; then
        echo "--- last lines of $(basename "$log")"
        tail -n 30 "$log"
      fi
    done
  fi
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT

die() {
  echo "FAIL: $*" >&2
  exit 1
}

echo "--- prometheus: tools"
if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  # The package's postinst may try to start its own service on :9090; this script uses ports
  # of its own and does not depend on that one.
  if ! { $sudo apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends prometheus; } \
    >"$tmp/apt.log" 2>&1; then
    tail -n 20 "$tmp/apt.log"
    die "apt-get install prometheus failed"
  fi
fi
for tool in promtool prometheus curl python3; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found (Debian package prometheus provides prometheus and promtool)"
done
promtool --version 2>&1 | head -n 1
prometheus --version 2>&1 | head -n 1

venv="${CI_VENV:-$root/target/ci-venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check pyyaml==6.0.3 prometheus-client==0.26.0
py="$venv/bin/python"

echo "--- promtool check rules"
promtool check rules deploy/prometheus/rules.yaml
echo "--- promtool test rules"
promtool test rules deploy/prometheus/rules.test.yaml
echo "--- deploy/ checks (manifests, ServiceMonitor, scrape relabeling, dashboard)"
"$py" .ci/check_deploy.py static "$tmp/scrape-check.yaml"
echo "--- promtool check config (scrape.yaml without kubernetes_sd jobs)"
promtool check config "$tmp/scrape-check.yaml"

echo "--- healthscore serve"
[ -x "$bin" ] || die "no healthscore binary at $bin (build it first, or set HEALTHSCORE_BIN)"
"$py" .ci/check_deploy.py configs "$bin"
read -r grpc_port http_port prom_port < <("$py" - <<'EOF'
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
EOF
)
grpc="127.0.0.1:$grpc_port"
http="127.0.0.1:$http_port"
HEALTHSCORE_HTTP__LISTEN="$http" HEALTHSCORE_HOST__ENABLED=false \
  HEALTHSCORE_SERVER__SHUTDOWN_GRACE_SECS=0 \
  "$bin" serve --listen "$grpc" >"$tmp/healthscore.log" 2>&1 &
hs_pid=$!
for _ in $(seq 100); do
  kill -0 "$hs_pid" 2>/dev/null || die "healthscore exited at start"
  if curl -fsS -o /dev/null "http://$http/livez" 2>/dev/null; then break; fi
  sleep 0.2
done
curl -fsS -o /dev/null "http://$http/livez" || die "healthscore's /livez on $http did not answer 200 within 20 s"
echo "healthscore: gRPC $grpc, HTTP $http"

echo "--- push"
# mainDB at 28/32 = 87.5%: DS_POOL_HIGH_UTILIZATION (warning), datasources score 75.
cat >"$tmp/datasources.json" <<'EOF'
{"datasources":[{"name":"mainDB","active":28,"max":32}]}
EOF
# A second source that stops pushing: stale after its 1 s TTL (SOURCE_STALE on watchers), so
# healthscore_source_stale and the critical series are exercised too. datasources stays 75.
cat >"$tmp/watchers.json" <<'EOF'
{"watchers":[{"name":"orders-feed","running":true}]}
EOF
"$bin" push --addr "$grpc" --source app-1 --ttl 60s "$tmp/datasources.json"
"$bin" push --addr "$grpc" --source app-gone --ttl 1s "$tmp/watchers.json"
stale=""
for _ in $(seq 50); do
  if "$bin" get watchers --addr "$grpc" -o json |
    "$py" -c 'import json,sys; sys.exit(json.load(sys.stdin)["status"] != "critical")'; then
    stale=1
    break
  fi
  sleep 0.2
done
[ -n "$stale" ] || die "source app-gone did not turn stale within 10 s of its 1 s TTL"

echo "--- /metrics (Prometheus text format) | promtool check metrics"
# promtool parses the Prometheus text format only: OpenMetrics counters (TYPE x, samples
# x_total) would read as untyped families without HELP there, so ask for text/plain.
curl -fsS -H 'Accept: text/plain;version=0.0.4' -D "$tmp/text.headers" -o "$tmp/metrics.txt" \
  "http://$http/metrics" || die "GET /metrics (text/plain) failed"
ctype=$(tr -d '\r' <"$tmp/text.headers" | sed -n 's/^[Cc]ontent-[Tt]ype: *//p' | tail -n 1)
case "$ctype" in
  text/plain*version=0.0.4*) echo "Content-Type: $ctype" ;;
  *) die "/metrics asked for text/plain;version=0.0.4 answered Content-Type '$ctype'" ;;
esac
if ! lint=$(promtool check metrics <"$tmp/metrics.txt" 2>&1) || [ -n "$lint" ]; then
  echo "$lint"
  die "promtool check metrics found problems in /metrics"
fi
echo "promtool check metrics: no lint warning ($(grep -vc '^#' "$tmp/metrics.txt") samples)"

echo "--- /metrics (OpenMetrics)"
curl -fsS -H 'Accept: application/openmetrics-text;version=1.0.0' -D "$tmp/om.headers" \
  -o "$tmp/metrics.om" "http://$http/metrics" || die "GET /metrics (OpenMetrics) failed"
ctype=$(tr -d '\r' <"$tmp/om.headers" | sed -n 's/^[Cc]ontent-[Tt]ype: *//p' | tail -n 1)
"$py" .ci/check_deploy.py openmetrics "$tmp/metrics.om" "$ctype"

echo "--- prometheus scraping healthscore"
cat >"$tmp/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - $root/deploy/prometheus/rules.yaml
scrape_configs:
  - job_name: healthscore
    static_configs:
      - targets: ["$http"]
  # The file_sd format healthscore's [[scrape]] file_sd reads, read by Prometheus itself.
  - job_name: healthscore-file-sd
    file_sd_configs:
      - files: ["$tmp/targets/*.json"]
        refresh_interval: 1s
EOF
mkdir -p "$tmp/targets"
cat >"$tmp/targets/healthscore.json" <<EOF
[{"targets": ["$http"], "labels": {"__metrics_path__": "/metrics", "team": "ci"}}]
EOF
cat >"$tmp/file-sd.toml" <<EOF
[[scrape]]
name = "apps"
file_sd = ["$tmp/targets/*.json"]
profile = "micrometer"
EOF
"$bin" config check "$tmp/file-sd.toml" >/dev/null || die "healthscore config check refuses the file_sd scrape"
promtool check config "$tmp/prometheus.yml" >/dev/null
prom="http://127.0.0.1:$prom_port"
prometheus --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/data" \
  --web.listen-address="127.0.0.1:$prom_port" >"$tmp/prometheus.log" 2>&1 &
prom_pid=$!
for _ in $(seq 150); do
  kill -0 "$prom_pid" 2>/dev/null || die "prometheus exited at start"
  if curl -fsS -o /dev/null "$prom/-/ready" 2>/dev/null; then break; fi
  sleep 0.2
done
curl -fsS -o /dev/null "$prom/-/ready" || die "prometheus on $prom was not ready within 30 s"
echo "prometheus: $prom"

query='healthscore_subsystem_score{job="healthscore",subsystem="datasources"}'
value=""
for _ in $(seq 30); do
  value=$(curl -fsSG --data-urlencode "query=$query" "$prom/api/v1/query" 2>/dev/null |
    "$py" -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if len(r)==1 else "")' ||
    true)
  if [ "$value" = "75" ]; then break; fi
  sleep 1
done
if [ "$value" != "75" ]; then
  curl -fsS "$prom/api/v1/targets" 2>/dev/null | "$py" -c \
    'import json,sys; [print("target", t["scrapeUrl"], t["health"], t.get("lastError", "")) for t in json.load(sys.stdin)["data"]["activeTargets"]]' || true
  die "PromQL $query answered '${value}' after 30 s, want 75"
fi
echo "PromQL $query = $value"
up=""
for _ in $(seq 30); do
  up=$(curl -fsSG --data-urlencode 'query=up{job="healthscore-file-sd",team="ci"}' "$prom/api/v1/query" 2>/dev/null |
    "$py" -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if len(r)==1 else "")' ||
    true)
  if [ "$up" = "1" ]; then break; fi
  sleep 1
done
[ "$up" = "1" ] || die "Prometheus did not scrape the file_sd target healthscore reads too"
echo "Prometheus scrapes the file_sd file's target: up = 1"

echo "--- alerts and dashboard queries on the scraped series"
"$py" .ci/check_deploy.py prometheus "$prom" "$http"

echo "--- prometheus: ok"
