#!/usr/bin/env bash
# THE "start the local gateway" command:
#   promptgate (embedded default policy, or PROMPTGATE_CONFIG=file) on 127.0.0.1:50051
#   Envoy (deploy/envoy/envoy.yaml) on 127.0.0.1:8080, admin 127.0.0.1:9901
#   promptgate admin (/metrics, /healthz, /readyz) on 127.0.0.1:9090 (PROMPTGATE_ADMIN_LISTEN)
#   traces: set OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317 (Envoy exports there too)
# Then point clients at it, e.g.
#   ANTHROPIC_BASE_URL=http://127.0.0.1:8080 claude
#   OPENAI_BASE_URL=http://127.0.0.1:8080/openai/v1 ...
# Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

ensure_envoy
cargo build --release --bin promptgate

args=(serve --listen 127.0.0.1:50051 --drain-grace 0s --admin-listen "${PROMPTGATE_ADMIN_LISTEN:-127.0.0.1:9090}")
[[ -n "${PROMPTGATE_CONFIG:-}" ]] && args+=(--config "$PROMPTGATE_CONFIG")
[[ -n "${PROMPTGATE_SECRETS_DIR:-}" ]] && args+=(--secrets-dir "$PROMPTGATE_SECRETS_DIR")

pg_pid=""
envoy_pid=""
cleanup() {
  for pid in $envoy_pid $pg_pid; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in $envoy_pid $pg_pid; do
    wait "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

target/release/promptgate "${args[@]}" &
pg_pid=$!

# wait until promptgate accepts connections (or died)
for _ in $(seq 1 100); do
  if ! kill -0 "$pg_pid" 2>/dev/null; then
    echo "promptgate exited; see its log above" >&2
    exit 1
  fi
  if (exec 3<>/dev/tcp/127.0.0.1/50051) 2>/dev/null; then
    break
  fi
  sleep 0.1
done

echo ">> Envoy on http://127.0.0.1:8080 (admin http://127.0.0.1:9901)" >&2
# Envoy runs as a child we `wait` for (not exec, not a plain foreground
# command), so INT/TERM to this script run the traps at once and the EXIT trap
# stops both processes; if Envoy exits by itself promptgate is stopped too.
"$ENVOY_BIN" -c deploy/envoy/envoy.yaml --use-dynamic-base-id \
  --file-flush-interval-msec 1000 "$@" &
envoy_pid=$!
wait "$envoy_pid"
