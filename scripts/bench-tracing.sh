#!/usr/bin/env bash
# Tracing overhead: promptgate with OTLP trace export on (100% sampled, to a
# real receiver on loopback) vs off, interleaved in one run, no Envoy.
#   PROMPTGATE_BENCH_REQUESTS=2000 ./scripts/bench-tracing.sh
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo bench --bench tracing_overhead
