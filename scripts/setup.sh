#!/usr/bin/env bash
# Installs everything the project needs on a fresh machine of this kind: Graphviz's `dot` (for the
# SVG diagrams), Chromium (the headless browser that checks the audit report renders) and a
# virtualenv in .venv holding the package with every extra and its development tools.
# Safe to run again: each step is skipped when its result is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
    local runner=""
    [ "$(id -u)" = 0 ] || runner="sudo"
    $runner apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $runner apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

missing=()
command -v dot >/dev/null || missing+=(graphviz)
command -v chromium >/dev/null || missing+=(chromium)
[ "${#missing[@]}" = 0 ] || apt_install "${missing[@]}"

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[dev,postgres,server,simulator,rabbitmq]'
