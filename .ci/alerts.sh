#!/usr/bin/env bash
# healthscore's alerts through two real Alertmanagers (Debian's `prometheus-alertmanager`), each
# routing to a webhook receiver this script serves with send_resolved:
#   - a saturated pool gives exactly one firing notification per Alertmanager, with the issue's
#     labels and annotations, and /api/v2/alerts lists the alert;
#   - the fix gives exactly one resolved notification per Alertmanager;
#   - an Alertmanager stopped, and started again empty, has the active alert back within
#     alerting.resend_secs.
# A missing tool fails the run. Env: HEALTHSCORE_BIN (default target/debug/healthscore).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(realpath -e "${HEALTHSCORE_BIN:-target/debug/healthscore}")

echo "--- alerts: tools (Debian)"
if [ "$(dpkg-query -W -f='${db:Status-Abbrev}' prometheus-alertmanager 2>/dev/null)" != "ii " ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus-alertmanager >/dev/null
fi
for tool in prometheus-alertmanager curl python3; do
  command -v "$tool" >/dev/null || { echo "alerts.sh: $tool is not installed" >&2; exit 1; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/healthscore-alerts.XXXXXX")
pids=()
am_pids=("" "")
cleanup() {
  local rc=$?
  for pid in "${pids[@]}" "${am_pids[@]}"; do
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

# The webhook receiver: appends each notification, one JSON per line, to notifications-<path>.
hook_port=$(free_port)
python3 - "$hook_port" "$tmp" >"$tmp/hook.log" 2>&1 <<'EOF' &
import http.server, json, sys
port, out = int(sys.argv[1]), sys.argv[2]
class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        with open(f"{out}/notifications-{self.path.strip('/')}", "a") as f:
            f.write(json.dumps(json.loads(body)) + "\n")
        self.send_response(200)
        self.end_headers()
http.server.HTTPServer(("127.0.0.1", port), Hook).serve_forever()
EOF
pids+=($!)

am_ports=("$(free_port)" "$(free_port)")
start_am() { # index
  local i=$1
  cat >"$tmp/am$i.yml" <<EOF
route:
  receiver: hook
  group_by: [alertname, subsystem]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: http://127.0.0.1:$hook_port/am$i
        send_resolved: true
EOF
  rm -rf "$tmp/am$i-data"
  prometheus-alertmanager --config.file="$tmp/am$i.yml" --storage.path="$tmp/am$i-data" \
    --web.listen-address="127.0.0.1:${am_ports[$i]}" --cluster.listen-address= >>"$tmp/am$i.log" 2>&1 &
  am_pids[$i]=$!
  for _ in $(seq 100); do
    curl -fsS "http://127.0.0.1:${am_ports[$i]}/-/ready" >/dev/null 2>&1 && return
    sleep 0.1
  done
  die "Alertmanager $i did not start"
}
start_am 0
start_am 1

grpc="127.0.0.1:$(free_port)"
http="127.0.0.1:$(free_port)"
cat >"$tmp/healthscore.toml" <<EOF
[server]
shutdown_grace_secs = 0
[http]
listen = "$http"
[host]
enabled = false
[alerting]
alertmanagers = ["http://127.0.0.1:${am_ports[0]}", "http://127.0.0.1:${am_ports[1]}"]
resend_secs = 2
labels = { cluster = "ci" }
EOF
"$bin" config check "$tmp/healthscore.toml"
"$bin" serve --config "$tmp/healthscore.toml" --listen "$grpc" >"$tmp/healthscore.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do "$bin" probe --addr "$grpc" >/dev/null 2>&1 && break; sleep 0.1; done

echo '{"datasources": [{"name": "mainDB", "active": 31, "max": 32}]}' >"$tmp/critical.json"
echo '{"datasources": [{"name": "mainDB", "active": 1, "max": 32}]}' >"$tmp/healthy.json"
push() { "$bin" push --addr "$grpc" --source app-1 --ttl 600s "$tmp/$1.json" >/dev/null; }
# count <am> <status>: notifications of DS_POOL_SATURATED with that status.
count() {
  local file="$tmp/notifications-am$1"
  [ -f "$file" ] || { echo 0; return; }
  python3 - "$file" "$2" <<'EOF'
import json, sys
n = 0
for line in open(sys.argv[1]):
    note = json.loads(line)
    if note["status"] == sys.argv[2] and any(a["labels"]["alertname"] == "DS_POOL_SATURATED" for a in note["alerts"]):
        n += 1
print(n)
EOF
}
wait_count() { # am status n
  for _ in $(seq 150); do [ "$(count "$1" "$2")" -ge "$3" ] && return; sleep 0.1; done
}

echo "--- a saturated pool fires once per Alertmanager"
push critical
for i in 0 1; do wait_count "$i" firing 1; done
sleep 5 # two resends: still one notification each
for i in 0 1; do
  [ "$(count "$i" firing)" = 1 ] || die "Alertmanager $i notified $(count "$i" firing) times"
done
python3 - "$tmp/notifications-am0" "$grpc" "$http" <<'EOF' || die "the notification's alert is not the issue"
import json, sys
alert = next(a for a in json.loads(open(sys.argv[1]).readline())["alerts"])
labels, annotations = alert["labels"], alert["annotations"]
want = {"alertname": "DS_POOL_SATURATED", "subsystem": "datasources", "entity": "mainDB",
        "source": "app-1", "severity": "critical", "instance": sys.argv[3], "cluster": "ci"}
assert all(labels.get(k) == v for k, v in want.items()), labels
assert "mainDB" in annotations["summary"] and annotations["action"] and "utilization" in annotations["description"], annotations
assert alert["generatorURL"] == f"http://{sys.argv[3]}/?subsystem=datasources", alert["generatorURL"]
assert alert["status"] == "firing"
EOF
curl -fsS "http://127.0.0.1:${am_ports[0]}/api/v2/alerts" | grep -q '"alertname":"DS_POOL_SATURATED"' ||
  die "Alertmanager's /api/v2/alerts does not list the alert"
ok "one firing notification per Alertmanager, with the issue's labels and annotations; listed by the API"

echo "--- the fix resolves it once"
push healthy
for i in 0 1; do wait_count "$i" resolved 1; done
sleep 3
for i in 0 1; do
  [ "$(count "$i" resolved)" = 1 ] || die "Alertmanager $i sent $(count "$i" resolved) resolved notifications"
done
ok "one resolved notification per Alertmanager"

echo "--- an Alertmanager restarted empty gets the active alert back within resend_secs"
push critical
wait_count 0 firing 2
kill "${am_pids[0]}" && wait "${am_pids[0]}" 2>/dev/null || true
sleep 3
start_am 0
for _ in $(seq 40); do
  curl -fsS "http://127.0.0.1:${am_ports[0]}/api/v2/alerts" | grep -q '"alertname":"DS_POOL_SATURATED"' && break
  sleep 0.1
done
curl -fsS "http://127.0.0.1:${am_ports[0]}/api/v2/alerts" | grep -q '"alertname":"DS_POOL_SATURATED"' ||
  die "the restarted Alertmanager did not get the alert back within resend_secs"
curl -fsS "http://$http/metrics" | grep -E '^healthscore_alerts_sent_total\{.*result="failed"\} [1-9]' >/dev/null ||
  die "the failed sends to the stopped Alertmanager are not counted"
ok "the restarted Alertmanager lists the alert again; failed sends are counted"
echo "--- alerts ok"
