#!/usr/bin/env bash
# The README's first command: install everything, then run the main job on the default SQLite file.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/ewallet-fsm demo "$@"
