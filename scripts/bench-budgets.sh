#!/usr/bin/env bash
# Budgets through real Envoy: the Redis check and debit against the same
# gateway without budgets, in one run (loopback only; starts its own Redis).
#   PROMPTGATE_BENCH_REQUESTS=1000 PROMPTGATE_BENCH_SECONDS=5 ./scripts/bench-budgets.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_envoy
ensure_redis
export ENVOY_LOG_LEVEL="${ENVOY_LOG_LEVEL:-warn}"
exec cargo bench --bench budgets_load
