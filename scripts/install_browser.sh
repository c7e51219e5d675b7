#!/usr/bin/env bash
# Install Debian's chromium for the headless browser tests (tests/airflow/test_browser.py,
# tests/prefect/test_browser.py). They drive it with Playwright for Python (the `browser`
# extra, in the airflow and prefect venvs) and executable_path=/usr/bin/chromium; Playwright's
# own browser download (`playwright install`) is never used. Idempotent: does nothing when
# /usr/bin/chromium exists; without root or apt-get it only says so (the tests then skip).
set -uo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_browser.sh: no apt-get here; browser tests will be skipped" >&2
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo -n"; else
    echo "install_browser.sh: not root and no sudo; browser tests will be skipped" >&2
    exit 0
  fi
fi
echo "==> installing chromium (apt-get)"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null 2>&1 || true
if ! $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null; then
  echo "install_browser.sh: apt-get install chromium failed; browser tests will be skipped" >&2
fi
exit 0
