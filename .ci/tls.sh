#!/usr/bin/env bash
# TLS, mTLS, certificate reloads and bearer tokens, checked with clients healthscore did not
# write: grpc-go (clients/go/healthprobe, grpc-health-probe's flags on the library it is built
# on; grpc-health-probe and grpcurl themselves are not packaged by Debian, PyPI or npm), Python's
# grpcio, curl and openssl, plus healthscore's own CLI. Certificates come from the openssl CLI.
# Takes $HEALTHSCORE_BIN (default target/debug/healthscore). Installs what it needs: Debian
# packages (apt-get), Python tools into target/ci-venv (PyPI); a missing tool fails the check.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

bin=$(realpath -e "${HEALTHSCORE_BIN:-target/debug/healthscore}") || {
  echo "tls.sh: no server binary at ${HEALTHSCORE_BIN:-target/debug/healthscore}" >&2
  exit 1
}

echo "--- tls: tools (Debian, PyPI)"
debs=(openssl curl golang-go golang-google-grpc-dev golang-google-protobuf-dev
  golang-github-golang-protobuf-1-5-dev)
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
"$venv/bin/pip" install --quiet --disable-pip-version-check -r clients/python/requirements.txt
(cd clients/python && PATH="$venv/bin:$PATH" ./generate.sh >/dev/null &&
  "$venv/bin/pip" install --quiet --disable-pip-version-check .)
for tool in openssl curl go; do
  command -v "$tool" >/dev/null || { echo "tls.sh: $tool is not installed" >&2; exit 1; }
done

scratch=$(mktemp -d)
server=
finish() {
  status=$?
  if [ -n "$server" ]; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    if [ "$status" -ne 0 ]; then echo "--- server log" && cat "$scratch/server.log"; fi
  fi
  rm -rf "$scratch"
}
trap finish EXIT
fail() { echo "tls.sh: $*" >&2; exit 1; }
ok() { echo "ok    $*"; }

echo "--- certificates (openssl)"
cd "$scratch"
issue_ca() { # name
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=healthscore CI $1" -keyout "$1.key" -out "$1.crt" 2>/dev/null
}
issue() { # name ca san
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$1" \
    -keyout "$1.key" -out "$1.csr" 2>/dev/null
  printf 'subjectAltName=%s\n' "$3" >"$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$2.crt" -CAkey "$2.key" -CAcreateserial -days 2 \
    -extfile "$1.ext" -out "$1.crt" 2>/dev/null
}
issue_ca ca
issue server ca "DNS:localhost,IP:127.0.0.1"
issue client ca "DNS:orders-1"
issue_ca other
issue renewed other "DNS:localhost,IP:127.0.0.1"
cp server.crt tls.crt && cp server.key tls.key
cd "$root"

free_port() { "$venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
grpc_port=$(free_port); http_port=$(free_port); probe_port=$(free_port)
read_token="ci-read-token-$(openssl rand -hex 12)"
push_token="ci-push-token-$(openssl rand -hex 12)"
printf '%s\n' "$push_token" >"$scratch/push.token"
printf '%s\n' "$read_token" >"$scratch/read.token"
cat >"$scratch/config.toml" <<EOF
[server]
listen = "127.0.0.1:$grpc_port"
shutdown_grace_secs = 0
[http]
listen = "127.0.0.1:$http_port"
[probes]
listen = "127.0.0.1:$probe_port"
[host]
enabled = false
[tls]
cert = "$scratch/tls.crt"
key = "$scratch/tls.key"
[[auth.tokens]]
file = "$scratch/push.token"
scopes = ["push"]
sources = ["orders-*"]
[[auth.tokens]]
env = "CI_READ_TOKEN"
scopes = ["read"]
EOF
CI_READ_TOKEN="$read_token" "$bin" config check "$scratch/config.toml" >/dev/null
CI_READ_TOKEN="$read_token" "$bin" serve --config "$scratch/config.toml" 2>"$scratch/server.log" &
server=$!
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$probe_port/livez" >/dev/null && break
  sleep 0.1
done

echo "--- grpc-go (clients/go/healthprobe)"
(cd clients/go && ./debian-vendor.sh && go build -mod=vendor -o "$scratch/healthprobe" ./healthprobe)
probe=("$scratch/healthprobe" -addr "127.0.0.1:$grpc_port" -connect-timeout 3s)
"${probe[@]}" -tls -tls-ca-cert "$scratch/ca.crt" -tls-server-name localhost >/dev/null ||
  fail "grpc-go Check over TLS failed"
ok "grpc-go: Check over TLS, the server verified against the CA"
if "${probe[@]}" 2>/dev/null; then fail "grpc-go: a plaintext Check on the TLS port succeeded"; fi
ok "grpc-go: a plaintext Check on the TLS port fails"
if "${probe[@]}" -tls -tls-ca-cert "$scratch/other.crt" -tls-server-name localhost 2>/dev/null; then
  fail "grpc-go: a server certificate from another CA was accepted"
fi
ok "grpc-go: a client trusting another CA refuses the server"
"$scratch/healthprobe" -addr "127.0.0.1:$probe_port" >/dev/null || fail "grpc-go: plaintext Check on the probe port failed"
ok "grpc-go: plaintext Check on the probe-only port (kubelet style)"

echo "--- curl"
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
https="https://127.0.0.1:$http_port"
[ "$(code --cacert "$scratch/ca.crt" "$https/v1/health")" = 401 ] || fail "curl: /v1/health without a token is not 401"
ok "curl: /v1/health over HTTPS without a token: 401"
[ "$(code --cacert "$scratch/ca.crt" -H "Authorization: Bearer $read_token" "$https/v1/health")" = 200 ] ||
  fail "curl: /v1/health with the read token is not 200"
ok "curl: /v1/health with the read token: 200"
[ "$(code --cacert "$scratch/ca.crt" -H "Authorization: Bearer $push_token" "$https/v1/health")" = 403 ] ||
  fail "curl: /v1/health with a push token is not 403"
ok "curl: /v1/health with a push token: 403"
[ "$(code --cacert "$scratch/ca.crt" "$https/livez")" = 200 ] || fail "curl: /livez over HTTPS is not open"
[ "$(code "http://127.0.0.1:$probe_port/readyz")" = 200 ] || fail "curl: /readyz on the probe port is not 200"
[ "$(code "http://127.0.0.1:$probe_port/v1/health")" = 404 ] || fail "curl: the probe port serves /v1/health"
ok "curl: /livez open over HTTPS; /readyz plaintext on the probe port, which serves nothing else"

echo "--- openssl s_client"
alpn=$(openssl s_client -connect "127.0.0.1:$grpc_port" -servername localhost -alpn h2 \
  -CAfile "$scratch/ca.crt" </dev/null 2>/dev/null | grep -m1 '^ALPN protocol' || true)
[ "$alpn" = "ALPN protocol: h2" ] || fail "the gRPC port negotiated '$alpn', not h2"
ok "openssl: the gRPC port negotiates ALPN h2 and verifies against the CA"

echo "--- Python grpcio"
CI_CA="$scratch/ca.crt" CI_ADDR="127.0.0.1:$grpc_port" CI_READ="$read_token" CI_PUSH="$push_token" \
  "$venv/bin/python" - <<'EOF'
import os

import grpc
from healthscore.v1 import metrics_pb2, service_pb2, service_pb2_grpc

with open(os.environ["CI_CA"], "rb") as f:
    tls = grpc.ssl_channel_credentials(root_certificates=f.read())
options = [("grpc.ssl_target_name_override", "localhost")]


def stub(token=None):
    credentials = tls
    if token:
        credentials = grpc.composite_channel_credentials(tls, grpc.access_token_call_credentials(token))
    channel = grpc.secure_channel(os.environ["CI_ADDR"], credentials, options)
    return service_pb2_grpc.HealthReportsStub(channel)


def code(call):
    try:
        call()
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def push(token, source):
    request = service_pb2.ReportMetricsRequest(
        source=source, datasources=[metrics_pb2.DatasourceSnapshot(name="db", active=1, idle=9, max=10)]
    )
    return code(lambda: stub(token).ReportMetrics(request, timeout=5))


read = lambda token: code(lambda: stub(token).GetSystemHealth(service_pb2.GetSystemHealthRequest(), timeout=5))
assert read(os.environ["CI_READ"]) == grpc.StatusCode.OK, read(os.environ["CI_READ"])
print("ok    grpcio: GetSystemHealth over TLS with the read token")
assert read(None) == grpc.StatusCode.UNAUTHENTICATED, read(None)
print("ok    grpcio: GetSystemHealth without a token: UNAUTHENTICATED")
assert push(os.environ["CI_READ"], "orders-1") == grpc.StatusCode.PERMISSION_DENIED
print("ok    grpcio: ReportMetrics with the read token: PERMISSION_DENIED")
assert push(os.environ["CI_PUSH"], "billing-1") == grpc.StatusCode.PERMISSION_DENIED
print("ok    grpcio: the orders-* push token pushing billing-1: PERMISSION_DENIED")
assert push(os.environ["CI_PUSH"], "orders-1") == grpc.StatusCode.OK
print("ok    grpcio: the orders-* push token pushing orders-1: OK")
EOF

echo "--- healthscore's CLI"
tls_flags=(--addr "127.0.0.1:$grpc_port" --tls-ca-cert "$scratch/ca.crt" --tls-server-name localhost)
"$bin" probe "${tls_flags[@]}" >/dev/null || fail "healthscore probe over TLS failed"
"$bin" get "${tls_flags[@]}" --token-file "$scratch/read.token" -o json | grep -q '"status"' ||
  fail "healthscore get over TLS with --token-file failed"
ok "healthscore probe and get (--tls-ca-cert, --token-file)"

echo "--- reload: a renewed certificate from another CA, then SIGHUP"
cp "$scratch/renewed.key" "$scratch/tls.key"
cp "$scratch/renewed.crt" "$scratch/tls.crt"
kill -HUP "$server"
served=
for _ in $(seq 50); do
  if [ "$(code --cacert "$scratch/other.crt" "$https/livez")" = 200 ]; then served=1; break; fi
  sleep 0.1
done
[ -n "$served" ] || fail "the renewed certificate was not served after SIGHUP"
[ "$(code --cacert "$scratch/ca.crt" "$https/livez")" = 000 ] || fail "the old certificate is still served"
kill -0 "$server" || fail "SIGHUP stopped the server"
ok "reload: the next connection gets the renewed certificate, without a restart"
grep -q "TLS certificates reloaded" "$scratch/server.log" || fail "no reload line in the log"
for token in "$read_token" "$push_token"; do
  if grep -qF "$token" "$scratch/server.log"; then fail "a token appears in the server log"; fi
done
ok "the server log names the reload and no token"

echo "--- mTLS: a server that requires client certificates"
kill "$server"; wait "$server" 2>/dev/null || true
mtls_port=$(free_port)
HEALTHSCORE_TLS__CERT="$scratch/server.crt" HEALTHSCORE_TLS__KEY="$scratch/server.key" \
  HEALTHSCORE_TLS__CLIENT_CA="$scratch/ca.crt" HEALTHSCORE_HTTP__ENABLED=false \
  HEALTHSCORE_HOST__ENABLED=false HEALTHSCORE_SERVER__SHUTDOWN_GRACE_SECS=0 \
  "$bin" serve --listen "127.0.0.1:$mtls_port" 2>"$scratch/server.log" &
server=$!
mtls=("$scratch/healthprobe" -addr "127.0.0.1:$mtls_port" -tls -tls-ca-cert "$scratch/ca.crt" -tls-server-name localhost)
for _ in $(seq 100); do
  "${mtls[@]}" -tls-client-cert "$scratch/client.crt" -tls-client-key "$scratch/client.key" >/dev/null 2>&1 && break
  sleep 0.1
done
"${mtls[@]}" -tls-client-cert "$scratch/client.crt" -tls-client-key "$scratch/client.key" >/dev/null ||
  fail "grpc-go with a client certificate was refused"
ok "grpc-go: Check with a client certificate signed by tls.client_ca"
if "${mtls[@]}" >/dev/null 2>&1; then fail "grpc-go without a client certificate was served"; fi
ok "grpc-go: without a client certificate the handshake is refused"
"$bin" probe --addr "127.0.0.1:$mtls_port" --tls-ca-cert "$scratch/ca.crt" --tls-server-name localhost \
  --tls-client-cert "$scratch/client.crt" --tls-client-key "$scratch/client.key" >/dev/null ||
  fail "healthscore probe with --tls-client-cert was refused"
ok "healthscore probe with --tls-client-cert and --tls-client-key"
echo "--- tls: ok"
