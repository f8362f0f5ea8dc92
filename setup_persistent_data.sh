#!/usr/bin/env bash
# Create the persistent_data tree, templates and secrets (the v3.3.1 setup script's name).
# A thin wrapper over `stockpred setup`; arguments are passed through.
set -euo pipefail
cd "$(dirname "$0")"
make --no-print-directory install >/dev/null
exec .venv/bin/stockpred setup "$@"
