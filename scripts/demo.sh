#!/usr/bin/env bash
# mirrorscale's main job on the embedded default (SQLite, no server to install): the Prefect example
# pipelines run with inputs that grow, shrink and spike, first without mirrorscale (each task held to its
# own static memory setting) and then in mode enforce; prints one line per run and a summary table, and
# writes a self-contained HTML report. Sets up the Prefect environment (.venvs/prefect) first.
#   bash scripts/demo.sh            # the full demo (a few minutes)
#   bash scripts/demo.sh --quick    # a short version
# Everything goes to $MIRRORSCALE_HOME (default: ./.demo), emptied at the start of each demo run.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
scripts/make_env.sh prefect
export MIRRORSCALE_HOME="${MIRRORSCALE_HOME:-$root/.demo}"
exec .venvs/prefect/bin/python -m mirrorscale.demo "$@"
