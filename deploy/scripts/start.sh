#!/usr/bin/env bash
# `npm start`: install what is missing, build, and run the standalone cluster.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash deploy/scripts/ensure-deps.sh
bin=packages/cli/dist/bin/sched-standalone.js
if [ ! -f "$bin" ]; then
  echo "sched-standalone is not built yet (it arrives with the operator-experience issue); use 'npm test' for now." >&2
  exit 1
fi
exec node "$bin" "$@"
