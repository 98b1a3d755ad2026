#!/usr/bin/env bash
# What the fleet guard's refresh costs Prometheus: Debian's Prometheus scrapes the series of 100
# simulated instances (healthscore_probe_failing for the system, 9 subsystems and 2 groups each,
# served by one exporter with honor_labels), then the guard's two queries run 200 times each;
# prints Prometheus' own evaluation time (stats=all) and the round trip, per query.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v prometheus >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
}
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
exporter=$(free_port)
prom=$(free_port)
python3 - "$exporter" >"$work/exporter.log" 2>&1 <<'EOF' &
import http.server, sys
names = [""] + ["datasources", "caches", "watchers", "schedulers", "executors", "webServer",
                "runtime", "performance", "host"] + ["traffic", "pools"]
lines = ["# TYPE healthscore_probe_failing gauge"]
for i in range(100):
    for n, name in enumerate(names):
        failing = 1 if name == "datasources" or (i + n) % 7 == 0 else 0
        lines.append(f'healthscore_probe_failing{{instance="10.0.{i // 250}.{i % 250}:8080",name="{name}"}} {failing}')
body = ("\n".join(lines) + "\n").encode()
class Exporter(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Exporter).serve_forever()
EOF
pids+=($!)
cat >"$work/prometheus.yml" <<EOF
global: {scrape_interval: 1s}
scrape_configs:
  - job_name: healthscore
    honor_labels: true
    static_configs: [{targets: ["127.0.0.1:$exporter"], labels: {app: orders}}]
EOF
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --web.listen-address="127.0.0.1:$prom" >"$work/prometheus.log" 2>&1 &
pids+=($!)
for _ in $(seq 60); do
  curl -fsS "http://127.0.0.1:$prom/api/v1/query?query=count(healthscore_probe_failing)" 2>/dev/null | grep -q "\"result\":\[{" && break
  sleep 0.5
done
python3 - "$prom" <<'EOF'
import json, statistics, sys, time, urllib.parse, urllib.request
prom = sys.argv[1]
series = 'healthscore_probe_failing{job="healthscore", app="orders", instance!="10.0.0.0:8080"}'
for aggregate in ("sum", "count"):
    query = f"{aggregate} by (name) ({series})"
    url = f"http://127.0.0.1:{prom}/api/v1/query?stats=all&query=" + urllib.parse.quote(query)
    evals, trips = [], []
    for _ in range(200):
        start = time.perf_counter()
        answer = json.load(urllib.request.urlopen(url))
        trips.append(time.perf_counter() - start)
        evals.append(answer["data"]["stats"]["timings"]["evalTotalTime"])
    names = len(answer["data"]["result"])
    print(f"{aggregate:>5} by (name) over 99 instances x 12 names: {names} results; "
          f"Prometheus evaluation median {statistics.median(evals) * 1e3:.3f} ms, "
          f"round trip median {statistics.median(trips) * 1e3:.3f} ms")
EOF
