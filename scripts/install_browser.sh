#!/usr/bin/env bash
# Install Debian's chromium for the headless browser tests (tests/prefect/test_browser.py),
# driven by Playwright for Python with executable_path=/usr/bin/chromium. Playwright's own
# browser download (`playwright install`) is never used. Idempotent: does nothing when
# /usr/bin/chromium exists; without root or apt-get it only says so (the tests then skip).
#   scripts/install_browser.sh [VENV]   also pip-installs playwright into VENV (e.g. .venvs/prefect)
set -uo pipefail
venv="${1:-}"
if [ -n "$venv" ] && ! "$venv/bin/python" -c "import playwright" >/dev/null 2>&1; then
  echo "==> installing playwright (pip) into $venv; its browser download is not used"
  "$venv/bin/python" -m pip install --quiet "playwright>=1.40" || echo "install_browser.sh: pip install playwright failed" >&2
fi
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
