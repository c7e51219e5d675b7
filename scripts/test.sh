#!/usr/bin/env bash
# Set up every environment mirrorscale needs and run the whole test suite.
#   core     (.venvs/core):    tests/unit, tests/integration, tests/system
#   airflow  (.venvs/airflow): tests/airflow   (Airflow 3.3 cannot share a venv with Prefect 3.9)
#   prefect  (.venvs/prefect): tests/prefect
# PostgreSQL tests use MIRRORSCALE_TEST_POSTGRES_URL (default: 127.0.0.1:5432/test);
# set MIRRORSCALE_REQUIRE_POSTGRES=1 to fail instead of skipping when it does not answer.
# Extra arguments are passed to every pytest run (e.g. -x, -k store).
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
status=0
run_suite() {  # run_suite ENV DIR...: set up ENV, then pytest the DIRs that exist
  local env="$1"; shift
  local dirs=()
  for d in "$@"; do [ -d "$d" ] && dirs+=("$d"); done
  [ ${#dirs[@]} -eq 0 ] && return 0
  scripts/make_env.sh "$env" || { echo "!! could not set up the $env environment" >&2; status=1; return; }
  echo "==> [$env] pytest ${dirs[*]}"
  ".venvs/$env/bin/python" -m pytest "${dirs[@]}" "${PYTEST_ARGS[@]}"
  local rc=$?
  [ $rc -ne 0 ] && status=1
}
PYTEST_ARGS=("$@")
scripts/install_browser.sh  # Debian chromium for the browser tests (tests/airflow, tests/prefect)
run_suite core tests/unit tests/integration tests/system
run_suite airflow tests/airflow
run_suite prefect tests/prefect
if [ $status -eq 0 ]; then echo "==> all suites passed"; else echo "==> some suite FAILED" >&2; fi
exit $status
