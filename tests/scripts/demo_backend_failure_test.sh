#!/usr/bin/env bash
# scripts/demo.sh when its local backend cannot start: it is told to use a
# port that does not exist (DEMO_BACKEND_PORT=70000), so test-backend exits at
# once with its reason on stderr. The demo must exit non-zero, say that
# test-backend could not start, and show the backend's log with the reason,
# instead of ending silently.
#   tests/scripts/demo_backend_failure_test.sh <repository root> <build dir>
set -euo pipefail
root=$1
build_dir=$2
work=$(mktemp -d /tmp/wep-demo-failure-test.XXXXXX)
trap 'rm -rf "$work"' EXIT
fail() {
  echo "demo_backend_failure_test: $*" >&2
  [ -f "$work/out" ] && { echo "---- demo output ----" >&2; cat "$work/out" >&2; }
  exit 1
}

status=0
env -u SUPABASE_URL -u SUPABASE_ANON_KEY BUILD_DIR="$build_dir" DEMO_BACKEND_PORT=70000 \
  timeout 300 "$root/scripts/demo.sh" >"$work/out" 2>&1 || status=$?
[ "$status" -ne 0 ] || fail "scripts/demo.sh exited with status 0 although its backend could not start"
[ "$status" -ne 124 ] || fail "scripts/demo.sh hung"
grep -q "test-backend .* could not start (exit status 2); its log:" "$work/out" || fail "no 'could not start' report"
grep -q "  test-backend: --port: not a port number: 70000" "$work/out" || fail "the backend's log (the reason) is not shown"
echo "demo_backend_failure_test: ok"
