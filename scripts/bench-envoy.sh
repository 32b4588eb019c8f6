#!/usr/bin/env bash
# Load through real Envoy: guarded Messages route vs the same request with
# ext_proc disabled for its route, side by side in one run (loopback only).
#   PROMPTGATE_BENCH_REQUESTS=1000 PROMPTGATE_BENCH_SECONDS=5 ./scripts/bench-envoy.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_envoy
# Envoy at debug for ext_proc (the tests' default) would tax only the guarded route.
export ENVOY_LOG_LEVEL="${ENVOY_LOG_LEVEL:-warn}"
exec cargo bench --bench envoy_load
