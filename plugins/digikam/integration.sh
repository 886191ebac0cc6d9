#!/usr/bin/env bash
# stylesearch against a real digiKam, headless: installs Debian/Ubuntu's digikam and xvfb
# with apt when missing (as root, or with sudo), then runs tests/test_digikam_integration.py
# with the repository's .venv: digiKam creates and scans a temporary collection, stylesearch
# syncs and indexes it and writes tags back, and digiKam's rescan must show them. Takes
# about half a minute once digiKam is installed. Extra arguments go to pytest.
#
#   bash plugins/digikam/integration.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! command -v digikam >/dev/null || ! command -v xvfb-run >/dev/null; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q digikam xvfb desktop-file-utils
fi
QT_QPA_PLATFORM=offscreen digikam --version 2>/dev/null
started=$(date +%s)
.venv/bin/python -m pytest -v -s -rs tests/test_digikam_integration.py "$@"
echo "digiKam integration test: $(($(date +%s) - started)) s"
