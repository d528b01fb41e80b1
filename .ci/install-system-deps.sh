#!/usr/bin/env bash
# Install the system services that the test suite starts for itself (tests/servers.py):
# PostgreSQL (initdb, pg_ctl, postgres) and Redis (redis-server), from Debian 12 packages.
#
# Idempotent: packages whose binaries are already present are not installed again, and
# `apt-get update` runs only when something is missing. Services that the Debian packages
# start on their default ports (5432, 6379) are stopped: the tests never use them, they start
# their own throw-away servers on 127.0.0.1 on free ports.
#
# Runs as root in CI; elsewhere it uses sudo when available.
#
# Example:
#   sudo .ci/install-system-deps.sh
set -euo pipefail

TEST_USER=batchscore-test   # unprivileged user that runs initdb/postgres when tests run as root

if [[ $(id -u) -eq 0 ]]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo)
else
  echo "install-system-deps: must run as root (or with sudo available), running as $(id -un)" >&2
  exit 1
fi

have_postgres() { compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; }
have_redis() { command -v redis-server >/dev/null 2>&1 || [[ -x /usr/bin/redis-server ]]; }
have_chromium() { [[ -x /usr/bin/chromium ]]; }  # the dashboard test drives it (Playwright)

missing=()
have_postgres || missing+=(postgresql)
have_redis || missing+=(redis-server)
have_chromium || missing+=(chromium)

if ((${#missing[@]})); then
  echo "install-system-deps: installing ${missing[*]}"
  # Keep the packages' maintainer scripts from starting services during the install, when no
  # policy is in place yet (exit code 101 = "action forbidden"); the file is removed again after.
  policy=/usr/sbin/policy-rc.d
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$policy" >/dev/null
    "${SUDO[@]}" chmod 755 "$policy"
    trap '"${SUDO[@]}" rm -f "$policy"' EXIT
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" apt-get update -q
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "install-system-deps: postgresql, redis-server and chromium already installed"
fi

# Stop the system services in case the packages (or an earlier boot) started them.
if command -v service >/dev/null 2>&1; then
  for svc in postgresql redis-server; do
    if [[ -e /etc/init.d/$svc ]]; then
      "${SUDO[@]}" service "$svc" stop >/dev/null 2>&1 || true
    fi
  done
fi

# The unprivileged user the tests switch to when they run as root (initdb refuses root).
if ! id "$TEST_USER" >/dev/null 2>&1; then
  "${SUDO[@]}" useradd --system --user-group --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin "$TEST_USER"
fi

initdb=$(compgen -G '/usr/lib/postgresql/*/bin/initdb' | sort -V | tail -n 1)
echo "install-system-deps: $("$initdb" --version)"
echo "install-system-deps: $(redis-server --version)"

# Azurite, the Azure Blob emulator (tests/azurite.py starts it), pinned for Node 20.
AZURITE_VERSION=3.35.0
if [[ "$(azurite-blob --version 2>/dev/null)" != "$AZURITE_VERSION" ]]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "install-system-deps: no npm here; installing Debian's nodejs and npm"
    "${SUDO[@]}" apt-get update -q
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -q --no-install-recommends nodejs npm
  fi
  echo "install-system-deps: installing azurite@$AZURITE_VERSION"
  "${SUDO[@]}" npm install -g --no-audit --no-fund "azurite@$AZURITE_VERSION" >/dev/null
fi
echo "install-system-deps: azurite-blob $(azurite-blob --version)"
echo "install-system-deps: $(/usr/bin/chromium --version 2>/dev/null || echo 'chromium ?')"
