#!/usr/bin/env bash
# Installs everything the project needs, idempotently:
#   - a Python 3.11 virtual environment in .venv with the project and its dev extras;
#   - the Apache Kafka broker's jars (Maven Central, cached in ~/.cache/fraud-detection);
#   - with --test: Apicurio Registry, built by Maven from deploy/registry (Maven Central, same cache);
#   - with --test: Debian's chromium and chromium-driver for the browser tests, and prometheus
#     (prometheus and promtool) for the rule and scrape tests in tests/ops.
# Usage: deploy/bootstrap.sh [--test]
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=false
[ "${1:-}" = "--test" ] && want_test=true

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

apt_install() {
  # Installs Debian packages when missing; needs root (CI and the dev machines run as root).
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
      say "please install: ${missing[*]} (apt-get install ${missing[*]})"; return 1
    fi
  else SUDO=""; fi
  say "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# --- Java and Maven for the local broker ------------------------------------------------------
command -v java >/dev/null 2>&1 || apt_install openjdk-17-jre-headless
command -v mvn >/dev/null 2>&1 || apt_install maven

# --- Python ---------------------------------------------------------------------------------------
PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      PYTHON=$candidate; break
    fi
  done
fi
[ -n "$PYTHON" ] || { say "Python 3.11 is required"; exit 1; }

stamp=.venv/.installed-$(cat pyproject.toml | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  say "creating .venv and installing the project (first run takes a few minutes)"
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[dev]"
  rm -f .venv/.installed-*
  touch "$stamp"
fi

# --- The detector's compiled walks (numba; cached beside their source, seconds the first time) --------
say "compiling the detector's walks over entity states"
.venv/bin/python -c "from pipeline.detection.states import compile_walks; compile_walks()"

# --- Kafka broker jars ------------------------------------------------------------------------------
say "Kafka broker jars: $(.venv/bin/fraud kafka fetch)"

# --- Schema registry for the wire-format tests (Apicurio, built with Maven from deploy/registry) -----------
if $want_test; then
  say "schema registry: $(.venv/bin/fraud registry fetch)"
fi

# --- Browser for the UI tests, Prometheus and promtool for tests/ops --------------------------------------
# The prometheus package may start a system service on :9090 where systemd runs; the tests do not use
# it: they run their own prometheus on a free port with a temporary data directory.
if $want_test; then
  apt_install chromium chromium-driver prometheus
fi
say "ready"
