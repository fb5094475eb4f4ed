#!/usr/bin/env bash
# The README's demo command: sets up, builds, starts a local HTTPS backend that
# speaks Supabase's PostgREST contract (or uses a real Supabase project when
# SUPABASE_URL and SUPABASE_ANON_KEY are set), then drives host-stub with the
# analytics plugin: mutations while offline, then online, and prints what was
# queued and what arrived.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${BUILD_DIR:-"$root/build"}
"$root/scripts/setup.sh"
"$root/scripts/build.sh" "$build_dir"

work=$(mktemp -d /tmp/wep-demo.XXXXXX)
backend_pid=""
cleanup() {
  [ -n "$backend_pid" ] && kill "$backend_pid" 2>/dev/null && wait "$backend_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

if [ -n "${SUPABASE_URL:-}" ] && [ -n "${SUPABASE_ANON_KEY:-}" ]; then
  url=$SUPABASE_URL
  api_key=$SUPABASE_ANON_KEY
  ca_line=""
  echo "demo: using the Supabase project at $url"
else
  api_key="demo-anon-key"
  mkfifo "$work/backend.out"
  "$build_dir/bin/test-backend" --cert "$build_dir/certs/server.pem" --key "$build_dir/certs/server.key" \
    --api-key "$api_key" --persist "$work/arrived.ndjson" --ignore-stdin \
    < /dev/null > "$work/backend.out" 2> "$work/backend.log" &
  backend_pid=$!
  exec 3< "$work/backend.out"
  read -r listening url <&3
  [ "$listening" = "listening" ] || { echo "demo: backend did not start" >&2; cat "$work/backend.log" >&2; exit 1; }
  ca_line="\"ca_file\": \"$build_dir/certs/ca.pem\","
  echo "demo: local PostgREST-speaking backend at $url (certificate verified against the demo CA)"
fi

cat > "$work/host.json" <<JSON
{
  "data_dir": "data",
  "settings": {"analytics_enabled": true},
  "plugins": [{
    "path": "$build_dir/plugins/libanalytics.so",
    "config": {
      "database": "analytics.db",
      "batch_size": 100,
      "flush_interval_ms": 200,
      "events": {
        "note.created": {"event_type": "note_created", "properties": ["word_count", "has_tags", "source"]},
        "tag.renamed":  {"event_type": "tag_renamed",  "properties": []}
      },
      "transport": {
        "plugin": "$build_dir/plugins/libsupabase.so",
        "config": {"url": "$url", "api_key": "$api_key", $ca_line "timeout_ms": 5000}
      }
    }
  }]
}
JSON

script='mutate note.created {"word_count": 120, "has_tags": true, "source": "toolbar", "title": "my secret diary"}
mutate note.created {"word_count": 7, "has_tags": false, "source": "someone@example.com"}
mutate tag.renamed {"from": "work", "to": "job"}
mutate note.deleted {"id": 42}
pending
online
wait-delivered 10000
stats
quit'
echo "demo: host-stub script (stdin):"
printf '%s\n' "$script" | sed 's/^/  > /'
echo "demo: host-stub answers (stdout):"
printf '%s\n' "$script" | "$build_dir/bin/host-stub" --config "$work/host.json" 2> "$work/host.log" | sed 's/^/  < /'

if [ -n "$backend_pid" ]; then
  echo "demo: rows that arrived at the backend (one JSON object per row):"
  sed 's/^/  /' "$work/arrived.ndjson"
  echo "demo: backend requests:"
  sed 's/^/  /' "$work/backend.log"
else
  echo "demo: the anon key cannot read rows back (insert-only policy); see the table in your project."
fi
echo "demo: host-stub log (stderr):"
sed 's/^/  /' "$work/host.log"
