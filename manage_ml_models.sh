#!/usr/bin/env bash
# The original's model-management script, as a thin wrapper over the `stockpred` command.
#   ./manage_ml_models.sh train NVDA [--epochs N] [--force] [--local]
#   ./manage_ml_models.sh predict NVDA [--horizon N]
#   ./manage_ml_models.sh list | show NVDA | rollback NVDA [--to VERSION]
#   ./manage_ml_models.sh import NVDA [--model F.h5] [--scaler F.pkl]
set -euo pipefail
cd "$(dirname "$0")"
make --no-print-directory install >/dev/null
command=${1:-}
[[ -n $command ]] || { sed -n '2,6p' "$0" >&2; exit 2; }
shift
case $command in
  train|predict) exec .venv/bin/stockpred "$command" "$@" ;;
  list|show|rollback|import) exec .venv/bin/stockpred models "$command" "$@" ;;
  *) echo "unknown command: $command" >&2; sed -n '2,6p' "$0" >&2; exit 2 ;;
esac
