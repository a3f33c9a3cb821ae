#!/usr/bin/env bash
# Install everything boeflow needs on a fresh Debian machine, from package registries only:
# Debian packages (PostgreSQL server, Maven, Redis, docker-compose), a Python venv from the pinned lock file, and the
# project itself. Idempotent: a warm run only checks. Source it or run it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${BOEFLOW_CACHE:-$HOME/.cache/boeflow}"
PYTHON="${BOEFLOW_PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

log() { printf '[bootstrap] %s\n' "$*" >&2; }

# --- Debian packages -------------------------------------------------------------------------
# shellcheck disable=SC1091
source "$ROOT/src/boeflow/core/versions.env"
need_apt=()
[ -x "/usr/lib/postgresql/${POSTGRES_VERSION}/bin/postgres" ] || need_apt+=("postgresql-${POSTGRES_VERSION}")
command -v mvn >/dev/null 2>&1 || need_apt+=(maven)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)        # Celery broker
command -v docker-compose >/dev/null 2>&1 || need_apt+=(docker-compose)    # compose file check
command -v java >/dev/null 2>&1 || need_apt+=(openjdk-17-jre-headless)
# Headless browser for the digest page tests (driven by Selenium through chromedriver).
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
# Apertium: the CPU Spanish<->Valencian translator and the production translator's cross-check.
command -v apertium >/dev/null 2>&1 || need_apt+=(apertium)
[ -f /usr/share/apertium/modes/spa-cat_valencia.mode ] || need_apt+=(apertium-spa-cat)
command -v vislcg3 >/dev/null 2>&1 || need_apt+=(cg3)
command -v lrx-proc >/dev/null 2>&1 || need_apt+=(apertium-lex-tools)
if [ "${#need_apt[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        log "missing Debian packages: ${need_apt[*]} (run as root or install them)"; exit 1
    fi
    log "installing Debian packages: ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # Do not let the packages start their own PostgreSQL/Redis: boeflow runs project-local ones.
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
    rm -f /usr/sbin/policy-rc.d
fi

# --- Python environment (keyed by the lock, shared by checkouts) -----------------------------
LOCK_HASH="$(cat "$ROOT/requirements/lock.txt" | sha256sum | cut -c1-12)"
VENV="${BOEFLOW_VENV:-$CACHE/venv-$LOCK_HASH}"
if [ ! -f "$VENV/.complete" ]; then
    log "creating $VENV from requirements/lock.txt (first run downloads ~4 GB from PyPI)"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade-strategy only-if-needed \
        --no-deps -r "$ROOT/requirements/lock.txt"
    "$VENV/bin/python" -m pip check >&2
    touch "$VENV/.complete"
fi
"$VENV/bin/python" -m pip install -q --no-deps --no-build-isolation -e "$ROOT" >/dev/null
export PATH="$VENV/bin:$PATH"
export BOEFLOW_VENV="$VENV"
export BOEFLOW_SMOKE_MODELS_DIR="${BOEFLOW_SMOKE_MODELS_DIR:-$CACHE/smoke-models}"
log "ready: $(boeflow --help >/dev/null && echo "boeflow CLI in $VENV")"
