#!/usr/bin/env bash
# The original's restore script, as a thin wrapper over `stockpred storage restore` (arguments pass through).
set -euo pipefail
cd "$(dirname "$0")/.."
make --no-print-directory install >/dev/null
exec .venv/bin/stockpred storage restore "$@"
