#!/usr/bin/env bash
# THE test command: installs what the tests need (idempotent), then runs them.
#   ./scripts/test.sh                 # everything
#   ./scripts/test.sh --test e2e_envoy some_test_name   # extra args go to cargo test
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

ensure_envoy
ensure_claude
ensure_manifest_validator
ensure_redis
echo ">> REDIS_SERVER_BIN=$REDIS_SERVER_BIN" >&2
echo ">> ENVOY_BIN=$ENVOY_BIN ($("$ENVOY_BIN" --version 2>/dev/null | grep -o '[0-9]*\.[0-9]*\.[0-9]*/' | head -1 | tr -d /))" >&2
echo ">> CLAUDE_BIN=$CLAUDE_BIN" >&2

# Formatting and lints are part of the tests: CI fails on either.
echo ">> cargo fmt --check" >&2
cargo fmt --all -- --check
echo ">> cargo clippy --all-targets -- -D warnings" >&2
cargo clippy --all-targets --quiet -- -D warnings

rm -f target/scale-report.txt
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --all-targets "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# the scale test's figures (tests/scale.rs; long form: ./scripts/scale.sh)
if [[ -f target/scale-report.txt ]]; then
  cat target/scale-report.txt
fi
# One closing line over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
