#!/usr/bin/env bash
# The v3.1 name of the setup script: the same as ./setup_persistent_data.sh (v3.3.1's name).
set -euo pipefail
exec "$(dirname "$0")/setup_persistent_data.sh" "$@"
