#!/usr/bin/env bash
# apt-ensure.sh CMD:PACKAGE ... — installs each Debian PACKAGE whose command CMD is missing.
# Safe to re-run: does nothing when every command is present; runs `apt-get update` once.
set -euo pipefail
missing=()
for pair in "$@"; do
  cmd=${pair%%:*}
  pkg=${pair#*:}
  if ! command -v "$cmd" >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/"$cmd" >/dev/null 2>&1; then
    missing+=("$pkg")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "apt-ensure: need root to install: ${missing[*]}" >&2
    exit 1
  fi
  echo "apt-ensure: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
