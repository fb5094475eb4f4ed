#!/usr/bin/env bash
# The README's test command: sets up, builds and runs every test.
#   scripts/test.sh [BUILD_DIR] [extra cmake -D arguments...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${1:-"$root/build"}
shift || true
"$root/scripts/setup.sh"
"$root/scripts/build.sh" "$build_dir" "$@"
cd "$build_dir"
ctest --output-on-failure -j "$(nproc)"
