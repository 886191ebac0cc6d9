#!/usr/bin/env bash
# The calibre plugin tested inside a real calibre GUI (offscreen, no display needed):
# installs Debian/Ubuntu's calibre with apt when it is missing (as root, or with sudo), then
# runs tests/test_calibre_integration.py with the repository's .venv. Takes well under a
# minute once calibre is installed. Extra arguments go to pytest.
#
#   bash plugins/calibre/integration.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v calibre-debug >/dev/null || ! command -v calibredb >/dev/null; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q calibre
fi
calibre-debug --version
started=$(date +%s)
.venv/bin/python -m pytest -v -s -rs tests/test_calibre_integration.py "$@"
echo "calibre integration test: $(($(date +%s) - started)) s"
