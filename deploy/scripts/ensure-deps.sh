#!/usr/bin/env bash
# Installs what sched needs on a Debian machine with Node.js 20 and npm:
#   - Debian's `zookeeper` (Java server, run as ZooKeeperServerMain) and `postgresql`, when missing;
#   - npm packages (`npm install` from the lock file) when node_modules is missing or older than package-lock.json;
#   - the TypeScript build (`tsc -b`, incremental).
# Used by `npm test` and `npm start`. Safe to run repeatedly; does nothing that is already done.
set -euo pipefail
cd "$(dirname "$0")/../.."

say() { printf '[ensure-deps] %s\n' "$*" >&2; }

need_apt=()
if ! command -v java >/dev/null 2>&1 || [ ! -f /usr/share/java/zookeeper.jar ]; then
  need_apt+=(zookeeper)
fi
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  need_apt+=(postgresql)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    say "missing Debian packages: ${need_apt[*]}; run as root or: sudo apt-get install -y ${need_apt[*]}"
    exit 1
  fi
  say "installing Debian packages: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

stamp=node_modules/.sched-lock-hash
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  # `npm install` rather than `npm ci`: npm 11 with omit-lockfile-registry-resolved (set on
  # these machines) writes lock files that `npm ci` rejects for other platforms' optional
  # packages (biome's). The lock file still pins every version.
  say "installing npm packages"
  npm install --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
fi

say "building (tsc -b)"
npx --no-install tsc -b
# npm links the sched-* commands (node_modules/.bin) at install time, but skips them while the
# build has not yet made their targets (a fresh clone): link them now that they exist, so that
# `npx sched-ctl` works in this folder.
if [ ! -e node_modules/.bin/sched-ctl ]; then
  npm rebuild @sched/cli --no-audit --no-fund --loglevel=error >/dev/null
fi
chmod +x packages/cli/dist/bin/*.js
