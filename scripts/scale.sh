#!/usr/bin/env bash
# Horizontal scale, measured: three promptgate processes behind one real Envoy
# (deploy/envoy/envoy.yaml with its gRPC health checks), steady mixed load,
# rolling restart (SIGTERM -> exit 0 -> start, one by one), kill -9 of one
# instance, and a policy reload under load. Loopback only, bounded in time.
#
#   ./scripts/scale.sh            # long form: release build, 16 workers, 3 rolling rounds
#   PROMPTGATE_SCALE_ROUNDS=1 PROMPTGATE_SCALE_STEADY_SECONDS=5 ./scripts/scale.sh
#
# The short form (about 30 s, debug build) runs in ./scripts/test.sh as
# `cargo test --test scale`. The report is printed and kept in target/scale-report.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_envoy
export ENVOY_LOG_LEVEL="${ENVOY_LOG_LEVEL:-warn}"
export PROMPTGATE_SCALE_CONCURRENCY="${PROMPTGATE_SCALE_CONCURRENCY:-16}"
export PROMPTGATE_SCALE_PERIOD_MS="${PROMPTGATE_SCALE_PERIOD_MS:-40}"
export PROMPTGATE_SCALE_STEADY_SECONDS="${PROMPTGATE_SCALE_STEADY_SECONDS:-20}"
export PROMPTGATE_SCALE_ROUNDS="${PROMPTGATE_SCALE_ROUNDS:-3}"
# the shipped default grace (5s) covers Envoy's 1s health-check interval
export PROMPTGATE_SCALE_DRAIN_GRACE="${PROMPTGATE_SCALE_DRAIN_GRACE:-5s}"
exec cargo test --release --test scale -- --nocapture
