#!/usr/bin/env bash
# `npm start`: install what is missing, build, and run the standalone cluster.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash deploy/scripts/ensure-deps.sh
exec node packages/cli/dist/bin/sched-standalone.js "$@"
