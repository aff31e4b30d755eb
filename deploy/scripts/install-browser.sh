#!/usr/bin/env bash
# Installs what the dashboard's browser test needs: Debian's Chromium and chromedriver (when
# missing) and axe-core from the npm registry into a cache directory. Prints the path of
# axe.min.js on standard output (everything else goes to standard error), so CI can do
#   export SPORTELLO_TEST_AXE=$(deploy/scripts/install-browser.sh)
set -euo pipefail

cache=${SPORTELLO_BROWSER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sportello}
axe_version=${SPORTELLO_AXE_VERSION:-4.10.3}

have() { command -v "$1" >/dev/null 2>&1; }

if ! have chromium || ! have chromedriver; then
  echo "install-browser: installing chromium and chromium-driver from Debian's packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  sudo_cmd=""
  if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
  $sudo_cmd apt-get update -qq >&2
  $sudo_cmd apt-get install -y -qq chromium chromium-driver >&2
fi
have chromium || { echo "install-browser: chromium is still missing" >&2; exit 1; }
have chromedriver || { echo "install-browser: chromedriver is still missing" >&2; exit 1; }

axe="$cache/axe-core-$axe_version/node_modules/axe-core/axe.min.js"
if [ ! -s "$axe" ]; then
  have npm || {
    echo "install-browser: npm is needed to fetch axe-core (apt-get install npm)" >&2
    exit 1
  }
  echo "install-browser: fetching axe-core $axe_version from the npm registry" >&2
  mkdir -p "$cache/axe-core-$axe_version"
  npm install --silent --no-audit --no-fund --ignore-scripts \
    --prefix "$cache/axe-core-$axe_version" "axe-core@$axe_version" >&2
fi
[ -s "$axe" ] || { echo "install-browser: $axe was not installed" >&2; exit 1; }
echo "$axe"
