#!/usr/bin/env bash
# Generates the Python client code from ../../proto into ./gen (not committed).
set -euo pipefail
cd "$(dirname "$0")"
rm -rf gen && mkdir -p gen
python -m grpc_tools.protoc -I ../../proto \
  --python_out=gen --grpc_python_out=gen \
  ../../proto/healthscore/v1/report.proto \
  ../../proto/healthscore/v1/metrics.proto \
  ../../proto/healthscore/v1/service.proto
