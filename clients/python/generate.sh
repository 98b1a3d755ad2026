#!/usr/bin/env bash
# Generates the Python code of the contract from ../../proto into src/healthscore/v1 (git-ignored;
# the package built from this directory includes it). Needs grpcio-tools (requirements.txt).
set -euo pipefail
cd "$(dirname "$0")"
rm -rf src/healthscore && mkdir -p src
python -m grpc_tools.protoc -I ../../proto \
  --python_out=src --grpc_python_out=src \
  ../../proto/healthscore/v1/report.proto \
  ../../proto/healthscore/v1/metrics.proto \
  ../../proto/healthscore/v1/service.proto
