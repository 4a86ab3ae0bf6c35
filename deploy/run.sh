#!/usr/bin/env bash
# Runs the gateway on embedded defaults: SQLite file under var/, the demo channel, SIP on
# 127.0.0.1:5060 (UDP and TCP), HTTP on 127.0.0.1:8080. Safe to re-run.
# Usage: deploy/run.sh [path/to/config.toml]
set -euo pipefail
cd "$(dirname "$0")/.."
tests/scripts/apt-ensure.sh cc:build-essential pkg-config:pkg-config cmake:cmake
if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is missing: install a Rust toolchain (rustup) first" >&2
  exit 1
fi
config="${1:-deploy/gateway.example.toml}"
mkdir -p var
cargo build --release --locked -p gateway
exec target/release/gateway serve --config "$config"
