#!/usr/bin/env bash
# The whole suite under ThreadSanitizer (CI's TSan stage):
#   scripts/test-tsan.sh [BUILD_DIR] [extra cmake -D arguments...]
# Builds with -DWEP_SANITIZE=thread through scripts/test.sh and runs every
# test. TSAN_OPTIONS carries absolute paths, so the processes the tests start
# (host-stub, test-backend, the demo scripts' children) get the same options
# from any working directory; every report, from any process, is written to
# BUILD_DIR/tsan-reports/report.<pid> and fails the run even when the test
# that started the process did not look at its exit status. nats-server and
# PostgreSQL are not instrumented and ignore the options.
# Suppressions: tests/tsan.supp (each entry says why it is needed).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${1:-"$root/build-tsan"}
shift || true
mkdir -p "$build_dir"
build_dir=$(cd "$build_dir" && pwd)
reports="$build_dir/tsan-reports"
rm -rf "$reports"
mkdir -p "$reports"
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$root/tests/tsan.supp log_path=$reports/report ${TSAN_OPTIONS:-}"
status=0
"$root/scripts/test.sh" "$build_dir" -DWEP_SANITIZE=thread "$@" || status=$?
shopt -s nullglob
found=("$reports"/report.*)
if [ ${#found[@]} -gt 0 ]; then
  echo "test-tsan: ${#found[@]} ThreadSanitizer report(s):" >&2
  cat "${found[@]}" >&2
  status=1
fi
exit "$status"
