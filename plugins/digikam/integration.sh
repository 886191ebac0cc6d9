#!/usr/bin/env bash
# stylesearch against a real digiKam, headless: installs Debian/Ubuntu's digikam, xvfb, gio,
# kde-cli-tools (KDE's service cache query), desktop-file-utils and dash with apt when missing
# (as root, or with sudo), then runs the digiKam tests with the repository's .venv. In
# tests/test_digikam_integration.py digiKam creates and scans a temporary collection,
# stylesearch syncs and indexes it, the Open With entries run and tag results, and digiKam's
# rescan must show the tags. About a minute once digiKam is installed. Extra arguments go
# to pytest.
#
#   bash plugins/digikam/integration.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
missing=""
for tool in digikam:digikam xvfb-run:xvfb gio:libglib2.0-bin ktraderclient5:kde-cli-tools \
            desktop-file-validate:desktop-file-utils dash:dash; do
    command -v "${tool%%:*}" >/dev/null || missing="$missing ${tool#*:}"
done
if [ -n "$missing" ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q $missing
fi
QT_QPA_PLATFORM=offscreen digikam --version 2>/dev/null
started=$(date +%s)
.venv/bin/python -m pytest -v -s -rs tests/test_digikam.py tests/test_digikam_integration.py "$@"
echo "digiKam integration test: $(($(date +%s) - started)) s"
