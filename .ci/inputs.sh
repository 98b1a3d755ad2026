#!/usr/bin/env bash
# Inputs beyond push, fed by real producers nobody here wrote (.ci/inputs/test_inputs.py):
#   - Debian's prometheus-node-exporter scraped with the `node` profile: this machine's cpu,
#     memory and / as host entities of source scrape:node, within a few points of the sampler's;
#   - a Micrometer-named app on the official prometheus_client (.ci/inputs/micrometer_app.py)
#     scraped with the `micrometer` profile: its entities, the pool at 31/32 turning datasources
#     critical (DS_POOL_SATURATED), the app stopped turning scrape:orders SOURCE_STALE;
#   - the official OpenTelemetry SDK with its OTLP gRPC exporter (.ci/inputs/otel_app.py)
#     exporting db.client.connection.* and jvm.* to the gRPC port: DS_POOL_SATURATED and
#     JVM_HEAP_CRITICAL on the entities of source checkout-N.
# Installs what it needs (apt-get: prometheus-node-exporter; PyPI: .ci/inputs/requirements.txt
# into target/ci-venv); a missing tool fails the run, nothing is skipped. Every process is
# started on a free port by the tests and stopped when they end; on failure the logs are printed.
# Usage: bash .ci/inputs.sh [pytest args]
# Env: HEALTHSCORE_BIN (default target/debug/healthscore), CI_VENV (default target/ci-venv).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

bin=$(realpath -e "${HEALTHSCORE_BIN:-target/debug/healthscore}") || {
  echo "inputs.sh: no server binary at ${HEALTHSCORE_BIN:-target/debug/healthscore}" >&2
  exit 1
}
export HEALTHSCORE_BIN="$bin"

scratch=$(mktemp -d "${TMPDIR:-/tmp}/healthscore-inputs.XXXXXX")
export INPUTS_SCRATCH="$scratch"
tests=""
finish() {
  local status=$?
  if [ -n "$tests" ] && kill -0 "$tests" 2>/dev/null; then
    kill "$tests" 2>/dev/null || true # its children get SIGTERM too (PR_SET_PDEATHSIG)
    wait "$tests" 2>/dev/null || true
  fi
  if [ "$status" -ne 0 ]; then
    for log in "$scratch"/*.log; do
      [ -s "$log" ] || continue
      if [ "$(basename "$log")" = healthscore.log ]; then
        echo "--- $(basename "$log")"
        cat "$log"
      else
        echo "--- last lines of $(basename "$log")"
        tail -n 30 "$log"
      fi
    done
    [ -f "$scratch/inputs.toml" ] && echo "--- inputs.toml" && cat "$scratch/inputs.toml"
  fi
  rm -rf "$scratch"
  exit "$status"
}
trap finish EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

echo "--- inputs: tools (Debian, PyPI)"
if ! command -v prometheus-node-exporter >/dev/null; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  # No service is started here (no systemd in CI); the tests run their own on a free port.
  if ! { $sudo apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
      prometheus-node-exporter; } >"$scratch/apt.log" 2>&1; then
    tail -n 20 "$scratch/apt.log"
    echo "inputs.sh: apt-get install prometheus-node-exporter failed" >&2
    exit 1
  fi
fi
venv="${CI_VENV:-$root/target/ci-venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r .ci/inputs/requirements.txt
for tool in prometheus-node-exporter "$venv/bin/pytest"; do
  command -v "$tool" >/dev/null || { echo "inputs.sh: $tool is not installed" >&2; exit 1; }
done
prometheus-node-exporter --version 2>&1 | head -n 1
"$venv/bin/python" -c 'from importlib.metadata import version as v
print(*(f"{p} {v(p)}" for p in ("prometheus-client", "opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-grpc")), sep=", ")'
"$bin" --version

echo "--- inputs: node_exporter, a Micrometer app and the OpenTelemetry SDK into healthscore"
"$venv/bin/pytest" -p no:cacheprovider -s -v .ci/inputs/test_inputs.py "$@" &
tests=$!
wait "$tests"
