#!/usr/bin/env bash
# The clients in other languages: runs every command of the README's "Clients in other
# languages" section. Checks that clients/go holds what `buf generate` writes, then builds and
# runs the Go, Python and Node examples (push, read, watch one change) and the Python tests
# against a real server: $HEALTHSCORE_BIN, default target/debug/healthscore. Installs what it
# needs: Debian packages (apt-get), Python tools into target/ci-venv (PyPI), Node modules (npm ci).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

bin=$(realpath -e "${HEALTHSCORE_BIN:-target/debug/healthscore}") || {
  echo "clients.sh: no server binary at ${HEALTHSCORE_BIN:-target/debug/healthscore}" >&2
  exit 1
}
export HEALTHSCORE_BIN="$bin"

echo "--- tools (Debian, PyPI)"
debs=(golang-go golang-google-grpc-dev golang-google-protobuf-dev golang-github-golang-protobuf-1-5-dev
  protobuf-compiler protoc-gen-go protoc-gen-go-grpc protobuf-compiler-grpc
  protobuf-compiler-grpc-java-plugin)
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
"$venv/bin/pip" install --quiet --disable-pip-version-check -r clients/python/requirements.txt buf-bin==1.75.0
export PATH="$venv/bin:$PATH"
for tool in go protoc protoc-gen-go protoc-gen-go-grpc grpc_python_plugin grpc_java_plugin buf node npm; do
  command -v "$tool" >/dev/null || { echo "clients.sh: $tool is not installed" >&2; exit 1; }
done

scratch=$(mktemp -d)
server=
grace_server=
finish() {
  status=$?
  [ -z "$grace_server" ] || kill "$grace_server" 2>/dev/null || true
  if [ -n "$server" ]; then
    kill "$server" 2>/dev/null || true
    wait "$server" || true
    if [ "$status" -ne 0 ]; then echo "--- server log" && cat "$scratch/server.log"; fi
  fi
  rm -rf "$scratch"
}
trap finish EXIT
port=$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
addr="127.0.0.1:$port"
HEALTHSCORE_HOST__ENABLED=false HEALTHSCORE_HTTP__ENABLED=false HEALTHSCORE_SERVER__SHUTDOWN_GRACE_SECS=0 \
  "$bin" serve --listen "$addr" 2>"$scratch/server.log" &
server=$!
for _ in $(seq 50); do
  "$bin" probe --addr "$addr" --service healthscore.v1.HealthReports >/dev/null 2>&1 && break
  sleep 0.2
done
"$bin" probe --addr "$addr" --service healthscore.v1.HealthReports

# An example must exit 0 and print the change it watched: the pool turning saturated.
saw_the_change() {
  grep -q DS_POOL_SATURATED "$1" || { echo "clients.sh: no DS_POOL_SATURATED in $1" >&2; exit 1; }
}

echo "--- generate: clients/go is what the protos generate"
cp -r clients/go/healthscore "$scratch/checked-in"
stale() {
  echo "clients.sh: clients/go/healthscore differs from what $1 writes: run buf generate" >&2
  exit 1
}
protoc -I proto --go_out=clients/go --go_opt=module=github.com/healthscore/healthscore/clients/go \
  --go-grpc_out=clients/go --go-grpc_opt=module=github.com/healthscore/healthscore/clients/go \
  proto/healthscore/v1/*.proto
# protoc names its version in a header line, where buf (which wrote the checked-in code) cannot.
diff -r -I '^//[[:space:]]*protoc[[:space:]]' "$scratch/checked-in" clients/go/healthscore || stale protoc
buf generate
diff -r "$scratch/checked-in" clients/go/healthscore || stale "buf generate"

echo "--- go"
(cd clients/go && ./debian-vendor.sh && go vet -mod=vendor ./... &&
  go run -mod=vendor ./example "$addr") | tee "$scratch/go.out"
saw_the_change "$scratch/go.out"

echo "--- go: client-side health checking through a blip and a lasting failure"
# A second server with a failure grace: a blip inside it must not take the backend out of
# grpc-go's rotation; a failure that lasts must.
grace_port=$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
grace="127.0.0.1:$grace_port"
HEALTHSCORE_HOST__ENABLED=false HEALTHSCORE_HTTP__ENABLED=false HEALTHSCORE_SERVER__SHUTDOWN_GRACE_SECS=0 \
  HEALTHSCORE_HEALTH__FAIL_AFTER=3s "$bin" serve --listen "$grace" 2>"$scratch/grace.log" &
grace_server=$!
for _ in $(seq 50); do "$bin" probe --addr "$grace" >/dev/null 2>&1 && break; sleep 0.2; done
echo '{"datasources": [{"name": "mainDB", "active": 31, "max": 32}]}' >"$scratch/critical.json"
echo '{"datasources": [{"name": "mainDB", "active": 1, "max": 32}]}' >"$scratch/healthy.json"
(cd clients/go && go build -mod=vendor -o "$scratch/clientside" ./clientside)
"$scratch/clientside" -addr "$grace" -for 4s -wait-ready >"$scratch/blip.out" &
client=$!
sleep 1
"$bin" push --addr "$grace" --source app-1 "$scratch/critical.json"
sleep 1
"$bin" push --addr "$grace" --source app-1 "$scratch/healthy.json"
wait "$client"
cat "$scratch/blip.out"
grep -qE '^ok=[1-9][0-9]* failed=0$' "$scratch/blip.out" ||
  { echo "clients.sh: grpc-go dropped calls during a blip inside fail_after" >&2; exit 1; }
"$bin" push --addr "$grace" --source app-1 "$scratch/critical.json"
sleep 4
"$scratch/clientside" -addr "$grace" -for 2s >"$scratch/lasting.out"
cat "$scratch/lasting.out"
grep -qE '^ok=0 failed=[1-9]' "$scratch/lasting.out" ||
  { echo "clients.sh: grpc-go kept a backend NOT_SERVING past fail_after in rotation" >&2; exit 1; }
kill "$grace_server" && wait "$grace_server" || true
grace_server=

echo "--- python"
(cd clients/python && ./generate.sh && pip install . && python -m healthscore_client "$addr") |
  tee "$scratch/python.out"
saw_the_change "$scratch/python.out"
(cd clients/python && pytest -q -p no:cacheprovider)

echo "--- node"
(cd clients/node && npm ci && node example.js "$addr") | tee "$scratch/node.out"
saw_the_change "$scratch/node.out"

echo "--- java (generation)"
ln -s "$root/proto" "$scratch/proto"
(cd "$scratch" && mkdir -p gen/java && protoc -I proto --java_out=gen/java --grpc-java_out=gen/java \
  --plugin=protoc-gen-grpc-java=/usr/bin/grpc_java_plugin proto/healthscore/v1/*.proto)
test -f "$scratch/gen/java/com/healthscore/v1/HealthReportsGrpc.java"

echo "--- clients ok"
