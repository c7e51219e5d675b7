#!/usr/bin/env bash
# Create (or refresh) one of mirrorscale's virtual environments under .venvs/.
#   scripts/make_env.sh core     -> .venvs/core     (core + dev + postgres + plot + ui extras)
#   scripts/make_env.sh airflow  -> .venvs/airflow  (core + airflow + browser extras)
#   scripts/make_env.sh prefect  -> .venvs/prefect  (core + prefect + browser extras)
# Airflow and Prefect cannot share one environment (conflicting FastAPI pins).
# Idempotent: a second run only installs what changed. Uses uv for speed.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
name="${1:-core}"
case "$name" in
  core)    extras="dev,postgres,plot,ui" ;;
  airflow) extras="dev,postgres,plot,browser,airflow" ;;
  prefect) extras="dev,postgres,plot,browser,prefect,ray" ;;
  *) echo "make_env.sh: unknown environment '$name' (use core, airflow or prefect)" >&2; exit 2 ;;
esac
venv="$root/.venvs/$name"
py="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
  echo "==> creating $venv"
  "$py" -m venv "$venv"
fi
if [ ! -x "$venv/bin/uv" ]; then
  "$venv/bin/python" -m pip install --quiet "uv>=0.4"
fi
echo "==> installing mirrorscale[$extras] into $venv"
"$venv/bin/uv" pip install --quiet --python "$venv/bin/python" -e "$root[$extras]"
