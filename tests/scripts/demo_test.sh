#!/usr/bin/env bash
# Runs scripts/demo.sh against an already-built tree (BUILD_DIR; its set-up and
# build steps then find nothing to do) with the local backend, and checks
# what the README promises it shows: exit status 0, the queue drained
# (pending 0), and exactly the two mapped note_created rows arriving at the
# backend, without the free text or the e-mail address.
#   tests/scripts/demo_test.sh <repository root> <build dir>
set -euo pipefail
root=$1
build_dir=$2
out=$(mktemp /tmp/wep-demo-test.XXXXXX)
trap 'rm -f "$out"' EXIT

status=0
env -u SUPABASE_URL -u SUPABASE_ANON_KEY BUILD_DIR="$build_dir" "$root/scripts/demo.sh" > "$out" 2>&1 || status=$?
fail() {
  echo "demo_test: $*" >&2
  echo "---- demo output ----" >&2
  cat "$out" >&2
  exit 1
}
[ "$status" -eq 0 ] || fail "scripts/demo.sh exited with status $status"

arrived=$(sed -n '/^demo: rows that arrived at the backend/,/^demo: backend requests:/p' "$out" | grep '"event_id"' || true)
[ "$(printf '%s\n' "$arrived" | grep -c '"event_type":"note_created"')" -eq 2 ] || fail "expected 2 note_created rows at the backend"
[ "$(printf '%s\n' "$arrived" | grep -c '"event_type":"tag_renamed"')" -eq 1 ] || fail "expected 1 tag_renamed row at the backend"
[ "$(printf '%s\n' "$arrived" | grep -c .)" -eq 3 ] || fail "expected exactly 3 rows at the backend"
printf '%s\n' "$arrived" | grep -q '"word_count":120' || fail "the first note's word_count did not arrive"
if grep -q 'my secret diary\|someone@example.com' <<< "$arrived"; then fail "free text or an e-mail address left the machine"; fi
grep -q '^  < pending 0$' "$out" || fail "wait-delivered did not answer pending 0"
echo "demo_test: ok"
