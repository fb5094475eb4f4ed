#!/usr/bin/env bash
# scripts/demo.sh when its local backend cannot start: the port it is told to
# use (DEMO_BACKEND_PORT) is already taken by another test-backend. The demo
# must exit non-zero, say that test-backend could not start, and show the
# backend's log with the reason, instead of ending silently.
#   tests/scripts/demo_backend_failure_test.sh <repository root> <build dir>
set -euo pipefail
root=$1
build_dir=$2
work=$(mktemp -d /tmp/wep-demo-failure-test.XXXXXX)
holder_pid=""
cleanup() {
  if [ -n "$holder_pid" ]; then kill "$holder_pid" 2>/dev/null && wait "$holder_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "demo_backend_failure_test: $*" >&2
  [ -f "$work/out" ] && { echo "---- demo output ----" >&2; cat "$work/out" >&2; }
  exit 1
}

# Another backend holds a port.
mkfifo "$work/holder.out"
"$build_dir/bin/test-backend" --cert "$build_dir/certs/server.pem" --key "$build_dir/certs/server.key" \
  --ignore-stdin </dev/null >"$work/holder.out" 2>"$work/holder.log" &
holder_pid=$!
exec 3<"$work/holder.out"
read -r -t 30 listening url <&3 || fail "the port holder did not start: $(cat "$work/holder.log")"
[ "$listening" = listening ] || fail "unexpected first line from the port holder: $listening $url"
port=${url##*:}

status=0
env -u SUPABASE_URL -u SUPABASE_ANON_KEY BUILD_DIR="$build_dir" DEMO_BACKEND_PORT="$port" \
  timeout 300 "$root/scripts/demo.sh" >"$work/out" 2>&1 || status=$?
[ "$status" -ne 0 ] || fail "scripts/demo.sh exited with status 0 although its backend could not start"
[ "$status" -ne 124 ] || fail "scripts/demo.sh hung"
grep -q "test-backend .* could not start (exit status 1); its log:" "$work/out" || fail "no 'could not start' report"
grep -qi "address already in use\|in use" "$work/out" || fail "the backend's log (the reason) is not shown"
echo "demo_backend_failure_test: ok"
