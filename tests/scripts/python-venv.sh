#!/usr/bin/env bash
# python-venv.sh DIR REQUIREMENT... — a Python virtual environment at DIR holding these PyPI
# packages (e.g. schemathesis==4.32.5). Safe to re-run: installs only what changed. Debian 12
# marks its Python as externally managed, so test tools live in their own environment.
set -euo pipefail
dir=$1
shift
cd "$(dirname "$0")/../.."
tests/scripts/apt-ensure.sh python3:python3
if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "python-venv: need root to install python3-venv" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
fi
if [ ! -x "$dir/bin/pip" ]; then
  python3 -m venv "$dir"
fi
stamp="$dir/.installed-$(printf '%s\n' "$@" | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  "$dir/bin/pip" install --quiet --disable-pip-version-check "$@"
  touch "$stamp"
fi
