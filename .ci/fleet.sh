#!/usr/bin/env bash
# The fleet guard with a real Prometheus (Debian's `prometheus`) scraping five real healthscore
# instances every second, each with [fleet] pointing at it, and grpc-go client-side health
# checking over the five (clients/go/clientside):
#   1. a saturated pool pushed into all five leaves all five SERVING with FLEET_CORRELATED, no
#      Watch stream is sent NOT_SERVING, and no call fails;
#   2. the pool healthy again in four: the fifth goes NOT_SERVING on its own, the others serve,
#      and calls avoid it;
#   3. Prometheus stopped with all five failing: each goes NOT_SERVING on its own verdict, with
#      FLEET_VIEW_UNAVAILABLE.
# A missing tool fails the run. Env: HEALTHSCORE_BIN (default target/debug/healthscore).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
bin=$(realpath -e "${HEALTHSCORE_BIN:-target/debug/healthscore}")

echo "--- fleet: tools (Debian)"
debs=(prometheus golang-go golang-google-grpc-dev golang-google-protobuf-dev golang-github-golang-protobuf-1-5-dev)
missing=()
for deb in "${debs[@]}"; do
  [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$deb" 2>/dev/null)" = "ii " ] || missing+=("$deb")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
for tool in prometheus go curl python3; do
  command -v "$tool" >/dev/null || { echo "fleet.sh: $tool is not installed" >&2; exit 1; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/healthscore-fleet.XXXXXX")
pids=()
prom_pid=""
cleanup() {
  local rc=$?
  for pid in "${pids[@]}" "$prom_pid"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  if [ "$rc" -ne 0 ]; then
    for log in "$tmp"/*.log; do
      echo "--- last lines of $(basename "$log")"
      tail -n 20 "$log"
    done
  fi
  rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT
die() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

(cd clients/go && ./debian-vendor.sh && go build -mod=vendor -o "$tmp/clientside" ./clientside)

prom_port=$(free_port)
grpc=()
http=()
for i in 0 1 2 3 4; do
  grpc+=("127.0.0.1:$(free_port)")
  http+=("127.0.0.1:$(free_port)")
done
targets=$(printf '"%s",' "${http[@]}")
cat >"$tmp/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: healthscore
    static_configs:
      - targets: [${targets%,}]
        labels: {app: orders}
EOF

start_prometheus() {
  prometheus --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/tsdb" \
    --web.listen-address="127.0.0.1:$prom_port" >>"$tmp/prometheus.log" 2>&1 &
  prom_pid=$!
}
start_prometheus
# fail_after (4 s) is longer than two refreshes (1 s) plus the scrape interval (1 s).
for i in 0 1 2 3 4; do
  HEALTHSCORE_HOST__ENABLED=false HEALTHSCORE_SERVER__SHUTDOWN_GRACE_SECS=0 \
  HEALTHSCORE_HTTP__LISTEN="${http[$i]}" HEALTHSCORE_HEALTH__FAIL_AFTER=4s \
  HEALTHSCORE_FLEET__PROMETHEUS_URL="http://127.0.0.1:$prom_port" \
  HEALTHSCORE_FLEET__PEERS='job="healthscore", app="orders"' \
  HEALTHSCORE_FLEET__INSTANCE="${http[$i]}" HEALTHSCORE_FLEET__REFRESH=1s \
    "$bin" serve --listen "${grpc[$i]}" >"$tmp/healthscore-$i.log" 2>&1 &
  pids+=($!)
done

peers() { curl -fsS "http://$1/metrics" | awk '$1 == "healthscore_fleet_peers" {print $2}'; }
for _ in $(seq 150); do
  all=1
  for i in 0 1 2 3 4; do [ "$(peers "${http[$i]}" 2>/dev/null)" = 5 ] || all=0; done
  [ "$all" = 1 ] && break
  sleep 0.2
done
for i in 0 1 2 3 4; do
  [ "$(peers "${http[$i]}")" = 5 ] || die "instance $i never saw five peers in Prometheus"
done
ok "every instance sees five peers through Prometheus"

echo '{"datasources": [{"name": "mainDB", "active": 31, "max": 32}]}' >"$tmp/critical.json"
echo '{"datasources": [{"name": "mainDB", "active": 1, "max": 32}]}' >"$tmp/healthy.json"
push() { "$bin" push --addr "${grpc[$1]}" --source app --ttl 120s "$tmp/$2.json" >/dev/null; }
readyz() { curl -s -o /dev/null -w '%{http_code}' "http://$1/readyz"; }
codes() { curl -sS "http://$1/v1/health/datasources" | json '",".join(i["code"] for i in d["issues"])'; }
addrs=$(IFS=,; echo "${grpc[*]}")

echo "--- 1. a failure all five share"
for i in 0 1 2 3 4; do push "$i" healthy; done
"$tmp/clientside" -addr "$addrs" -for 10s -wait-ready -watch >"$tmp/shared.out" &
client=$!
sleep 1
for i in 0 1 2 3 4; do push "$i" critical; done
sleep 7 # past fail_after
for i in 0 1 2 3 4; do
  [ "$(readyz "${http[$i]}")" = 200 ] || die "instance $i left rotation in a shared failure"
  codes "${http[$i]}" | grep -q FLEET_CORRELATED || die "instance $i: no FLEET_CORRELATED ($(codes "${http[$i]}"))"
done
curl -fsS "http://${http[0]}/readyz?verbose" | grep -q '^\[+\]fleet held: 5 of 5 instances' ||
  die "/readyz?verbose does not say the guard held: $(curl -sS "http://${http[0]}/readyz?verbose")"
wait "$client"
cat "$tmp/shared.out"
grep -qE '^ok=[1-9][0-9]* failed=0$' "$tmp/shared.out" || die "calls failed during a shared failure"
if grep -E '^watch ' "$tmp/shared.out" | grep -q NOT_SERVING; then die "a Watch stream was sent NOT_SERVING"; fi
[ "$(grep -cE '^watch .* SERVING$' "$tmp/shared.out")" = 5 ] || die "not every Watch stream saw SERVING"
ok "all five SERVING with FLEET_CORRELATED; no Watch saw NOT_SERVING; no call failed"

echo "--- 2. a failure of one"
for i in 1 2 3 4; do push "$i" healthy; done
for _ in $(seq 100); do [ "$(readyz "${http[0]}")" = 503 ] && break; sleep 0.1; done
[ "$(readyz "${http[0]}")" = 503 ] || die "the one failing instance stayed in rotation"
for i in 1 2 3 4; do [ "$(readyz "${http[$i]}")" = 200 ] || die "healthy instance $i left rotation"; done
"$tmp/clientside" -addr "$addrs" -for 3s -wait-ready >"$tmp/one.out"
cat "$tmp/one.out"
grep -qE '^ok=[1-9][0-9]* failed=0$' "$tmp/one.out" || die "calls failed with four healthy backends"
grep -q "^backend ${grpc[0]} calls=0$" "$tmp/one.out" || die "calls reached the sick instance"
ok "the sick instance alone is NOT_SERVING, and grpc-go avoids it"

echo "--- 3. Prometheus gone"
for i in 1 2 3 4; do push "$i" critical; done
for _ in $(seq 100); do [ "$(readyz "${http[0]}")" = 200 ] && break; sleep 0.1; done
[ "$(readyz "${http[0]}")" = 200 ] || die "the shared failure was not held again"
kill "$prom_pid" && wait "$prom_pid" 2>/dev/null || true
prom_pid=""
for i in 0 1 2 3 4; do
  for _ in $(seq 100); do [ "$(readyz "${http[$i]}")" = 503 ] && break; sleep 0.1; done
  [ "$(readyz "${http[$i]}")" = 503 ] || die "instance $i kept serving without a fleet view"
  codes "${http[$i]}" | grep -q FLEET_VIEW_UNAVAILABLE || die "instance $i: no FLEET_VIEW_UNAVAILABLE"
done
ok "without Prometheus each instance decides locally, with FLEET_VIEW_UNAVAILABLE"
echo "--- fleet ok"
