#!/usr/bin/env bash
# Set up the core environment and run mirrorscale's main job on the embedded default (SQLite).
# The store goes to $MIRRORSCALE_HOME (default: ./.demo), so the demo never touches your own store.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
scripts/make_env.sh core
export MIRRORSCALE_HOME="${MIRRORSCALE_HOME:-$root/.demo}"
unset MIRRORSCALE_DATABASE_URL
exec .venvs/core/bin/python -m mirrorscale.demo "$@"
