#!/usr/bin/env bash
# promptgate's memory through real Envoy (loopback only, bounded in time):
# peak memory per in-flight request, and RSS over a mixed load.
#   PROMPTGATE_SOAK_SECONDS=600 PROMPTGATE_MEMORY_INFLIGHT=8 PROMPTGATE_MEMORY_BODY_MB=4 ./scripts/bench-memory.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_envoy
export ENVOY_LOG_LEVEL="${ENVOY_LOG_LEVEL:-warn}"
exec cargo bench --bench memory
