#!/usr/bin/env bash
# The test command (README: `make test`): installs what it needs, starts the real services,
# builds the smoke models, then lints, type-checks and runs the whole test suite.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
started=$(date +%s)
# shellcheck disable=SC1091
source scripts/bootstrap.sh
boeflow services start
boeflow models smoke >/dev/null
echo "[test] ruff"; ruff check src tests dags plugins benchmarks scripts
echo "[test] mypy --strict"; mypy src
echo "[test] pytest"
set +e
pytest tests "$@"
status=$?
set -e
echo "[test] total $(( $(date +%s) - started ))s"
exit $status
