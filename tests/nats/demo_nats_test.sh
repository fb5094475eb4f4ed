#!/usr/bin/env bash
# Runs scripts/demo.sh --nats against an already-built tree (BUILD_DIR; its
# set-up and build steps then find nothing to do) and checks what it
# promises: exit status 0, the queue drained (pending 0), exactly the three
# mapped rows in the NATS stream without the free text or the e-mail address,
# no duplicate-window warning, and no nats-server left running.
#   tests/nats/demo_nats_test.sh <repository root> <build dir>
set -euo pipefail
root=$1
build_dir=$2
out=$(mktemp /tmp/wep-demo-nats-test.XXXXXX)
trap 'rm -f "$out"' EXIT

status=0
BUILD_DIR="$build_dir" "$root/scripts/demo.sh" --nats > "$out" 2>&1 || status=$?
fail() {
  echo "demo_nats_test: $*" >&2
  echo "---- demo output ----" >&2
  cat "$out" >&2
  exit 1
}
[ "$status" -eq 0 ] || fail "scripts/demo.sh --nats exited with status $status"

arrived=$(sed -n '/^demo: messages in the NATS stream/,/^demo: host-stub log/p' "$out" | grep '"event_id"' || true)
[ "$(printf '%s\n' "$arrived" | grep -c '"event_type":"note_created"')" -eq 2 ] || fail "expected 2 note_created rows in the stream"
[ "$(printf '%s\n' "$arrived" | grep -c '"event_type":"tag_renamed"')" -eq 1 ] || fail "expected 1 tag_renamed row in the stream"
[ "$(printf '%s\n' "$arrived" | grep -c .)" -eq 3 ] || fail "expected exactly 3 messages in the stream"
if grep -q 'my secret diary\|someone@example.com' <<< "$arrived"; then fail "free text or an e-mail address left the machine"; fi
grep -q '^  < pending 0$' "$out" || fail "wait-delivered did not answer pending 0"
if grep -q 'backoff.max_ms' "$out"; then fail "the demo's stream warns about its duplicate window"; fi
grep -q '3 in the NATS stream, 0 pending' "$out" || fail "the summary does not count 3 messages in the stream"
if pgrep -f "$build_dir/.*nats-cluster|wep-demo.*/nats/n[0-9].conf" > /dev/null; then fail "a nats process outlived the demo"; fi
echo "demo_nats_test: ok"
