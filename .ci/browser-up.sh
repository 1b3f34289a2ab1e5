#!/usr/bin/env bash
# Headless Chromium from Debian's packages for the dashboard tests (Playwright drives it through
# executable_path=/usr/bin/chromium; its own browser download cannot work here). Needs root.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "browser-up: not root; no Chromium installed (the browser tests will be skipped)" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium >/dev/null
echo "browser-up: $(/usr/bin/chromium --version)" >&2
