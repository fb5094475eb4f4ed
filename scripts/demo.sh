#!/usr/bin/env bash
# The README's demo command: sets up, builds, starts a local HTTPS backend that
# speaks Supabase's PostgREST contract (or uses a real Supabase project when
# SUPABASE_URL and SUPABASE_ANON_KEY are set), then drives host-stub with the
# analytics plugin: mutations while offline, the queue as it stands (read with
# the sqlite3 CLI), then online; prints the plugin's stats, what arrived and
# the logs, and ends with a one-line summary.
#   scripts/demo.sh [--nats]
# --nats (or WEP_DEMO_TRANSPORT=nats): the rows go to a local 3-node NATS
# JetStream cluster instead (build/bin/nats-cluster, Debian's nats-server)
# through the nats transport, and are read back from the stream.
# Needs only bash, sqlite3 (its JSON functions read the stats) and sed/awk.
# DEMO_BACKEND_PORT: the local backend's port (default: any free one).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${BUILD_DIR:-"$root/build"}
transport=${WEP_DEMO_TRANSPORT:-supabase}
for arg in "$@"; do
  case $arg in
    --nats) transport=nats ;;
    *) echo "usage: scripts/demo.sh [--nats]" >&2; exit 2 ;;
  esac
done
case $transport in supabase | nats) ;; *) echo "demo: WEP_DEMO_TRANSPORT must be supabase or nats" >&2; exit 2 ;; esac
"$root/scripts/setup.sh"
"$root/scripts/build.sh" "$build_dir"

work=$(mktemp -d /tmp/wep-demo.XXXXXX)
backend_pid=""
host_pid=""
nats_pid=""
cleanup() {
  local status=$?
  if [ -n "$host_pid" ]; then kill "$host_pid" 2>/dev/null && wait "$host_pid" 2>/dev/null || true; fi
  if [ -n "$backend_pid" ]; then kill "$backend_pid" 2>/dev/null && wait "$backend_pid" 2>/dev/null || true; fi
  # nats-cluster stops its nodes at the end of its input (or on SIGTERM).
  if [ -n "$nats_pid" ]; then exec 4>&- 2>/dev/null || true; wait "$nats_pid" 2>/dev/null || true; fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT

fail() {
  echo "demo: $1" >&2
  shift
  for log in "$@"; do
    [ -s "$log" ] && sed 's/^/  /' "$log" >&2
  done
  exit 1
}

transport_plugin="$build_dir/plugins/libwep_supabase.so"
if [ "$transport" = nats ]; then
  mkfifo "$work/nats.in" "$work/nats.out"
  mkdir -p "$work/nats"
  "$build_dir/bin/nats-cluster" --dir "$work/nats" --stream EVENTS --subject 'events.>' --duplicate-window-ms 600000 \
    < "$work/nats.in" > "$work/nats.out" 2> "$work/nats.log" &
  nats_pid=$!
  exec 4> "$work/nats.in" 5< "$work/nats.out"
  ready="" urls="" read_status=0
  read -r -t 60 ready urls <&5 || read_status=$?
  if [ "$ready" != "ready" ] || [ -z "$urls" ]; then
    fail "nats-cluster ($build_dir/bin/nats-cluster) did not start a cluster within 60 s; its log:" "$work/nats.log" \
      "$work"/nats/n*.log
  fi
  servers=$(printf '"%s", ' ${urls//,/ })
  transport_plugin="$build_dir/plugins/libwep_nats.so"
  transport_config="{\"servers\": [${servers%, }], \"subject\": \"events.demo\", \"stream\": \"EVENTS\", \"timeout_ms\": 5000}"
  echo "demo: local NATS JetStream cluster, 3 nats-server nodes at $urls (stream EVENTS: 3 replicas, 10 min duplicate window)"
elif [ -n "${SUPABASE_URL:-}" ] && [ -n "${SUPABASE_ANON_KEY:-}" ]; then
  url=$SUPABASE_URL
  api_key=$SUPABASE_ANON_KEY
  ca_line=""
  echo "demo: using the Supabase project at $url"
else
  api_key="demo-anon-key"
  mkfifo "$work/backend.out"
  "$build_dir/bin/test-backend" --cert "$build_dir/certs/server.pem" --key "$build_dir/certs/server.key" \
    ${DEMO_BACKEND_PORT:+--port "$DEMO_BACKEND_PORT"} --api-key "$api_key" --persist "$work/arrived.ndjson" --ignore-stdin \
    < /dev/null > "$work/backend.out" 2> "$work/backend.log" &
  backend_pid=$!
  exec 3< "$work/backend.out"
  # test-backend prints "listening <url>" once it accepts connections; end of
  # file (it exited) or 30 s of silence means it did not start.
  listening="" url="" read_status=0
  read -r -t 30 listening url <&3 || read_status=$?
  if [ "$listening" != "listening" ] || [ -z "$url" ]; then
    if [ "$read_status" -gt 128 ]; then
      fail "test-backend ($build_dir/bin/test-backend) did not report listening within 30 s; its log:" \
        "$work/backend.log"
    fi
    status=0
    wait "$backend_pid" || status=$?
    backend_pid=""
    fail "test-backend ($build_dir/bin/test-backend) could not start (exit status $status); its log:" \
      "$work/backend.log"
  fi
  ca_line="\"ca_file\": \"$build_dir/certs/ca.pem\","
  echo "demo: local PostgREST-speaking backend at $url (certificate verified against the demo CA)"
fi
if [ "$transport" = supabase ]; then
  transport_config="{\"url\": \"$url\", \"api_key\": \"$api_key\", $ca_line \"timeout_ms\": 5000}"
fi

cat > "$work/host.json" <<JSON
{
  "data_dir": "data",
  "settings": {"analytics_enabled": true},
  "plugins": [{
    "path": "$build_dir/plugins/libwep_analytics.so",
    "config": {
      "database": "analytics.db",
      "batch_size": 100,
      "flush_interval_ms": 200,
      "events": {
        "note.created": {"event_type": "note_created", "properties": ["word_count", "has_tags", "source"]},
        "tag.renamed":  {"event_type": "tag_renamed",  "properties": []}
      },
      "transport": {
        "plugin": "$transport_plugin",
        "config": $transport_config
      }
    }
  }]
}
JSON
queue_db="$work/data/plugins/analytics/analytics.db"

# The mutations, made while offline: one unmapped type, a property that is not
# listed (title), an e-mail address in a listed one (source).
mutations=(
  'note.created {"word_count": 120, "has_tags": true, "source": "toolbar", "title": "my secret diary"}'
  'note.created {"word_count": 7, "has_tags": false, "source": "someone@example.com"}'
  'tag.renamed {"from": "work", "to": "job"}'
  'note.deleted {"id": 42}'
)

# host-stub runs as a coprocess: one command in, exactly one answer line out.
coproc HOST { exec "$build_dir/bin/host-stub" --config "$work/host.json" 2> "$work/host.log"; }
host_pid=$HOST_PID
host_in=${HOST[1]}
host_out=${HOST[0]}
answer=""
# send COMMAND [TIMEOUT_S]: prints the exchange; the answer is left in $answer.
send() {
  printf '  > %s\n' "$1"
  printf '%s\n' "$1" >&"$host_in" || fail "host-stub is not running; its log:" "$work/host.log"
  IFS= read -r -t "${2:-30}" answer <&"$host_out" || fail "host-stub did not answer '$1'; its log:" "$work/host.log"
  case $answer in
    error:*) fail "host-stub refused '$1': $answer" "$work/host.log" ;;
  esac
  if [ ${#answer} -gt 100 ]; then
    printf '  < %s... (%d characters, shown below)\n' "${answer:0:60}" "${#answer}"
  else
    printf '  < %s\n' "$answer"
  fi
}

# sql DATABASE [OPTION...] QUERY: the sqlite3 CLI, read-only, failing loudly.
sql() {
  local db=$1 query=${*: -1}
  sqlite3 -readonly "${@:2:$#-2}" "$db" "$query" || fail "sqlite3 could not read $db"
}
quote() { printf "'%s'" "${1//\'/\'\'}"; }

echo "demo: host-stub session (> command, < answer), offline first:"
for m in "${mutations[@]}"; do send "mutate $m"; done
send "pending"
queued=${answer#pending }

# A copy of the queue as it stands (delivered rows are deleted), for the
# table below and the summary.
queued_db="$work/queued.db"
sqlite3 "$queued_db" "ATTACH $(quote "file:$queue_db?mode=ro") AS live;
  CREATE TABLE analytics_queue AS SELECT * FROM live.analytics_queue ORDER BY id" ||
  fail "sqlite3 could not read the queue $queue_db"
table_mode=(-box)  # sqlite3 3.33 and later
sqlite3 -box :memory: "SELECT 1" >/dev/null 2>&1 || table_mode=(-header -column)
echo "demo: what was queued (analytics_queue, read with the sqlite3 CLI while offline):"
sql "$queued_db" "${table_mode[@]}" -nullvalue '(none)' "SELECT id, event_type, properties, user_id, created_at FROM analytics_queue ORDER BY id" |
  sed 's/^/  /'

send "online"
send "wait-delivered 10000" 30
pending=${answer#pending }
send "stats"
stats_json=$answer
send "quit"
wait "$host_pid" || fail "host-stub exited with status $?; its log:" "$work/host.log"
host_pid=""

# The analytics plugin's stats, flattened: "key<TAB>value" per leaf, nested
# keys joined with dots ("dropped.unmapped").
stats=$(sqlite3 -separator $'\t' :memory: "SELECT replace(substr(fullkey, length('\$.plugins.analytics.') + 1), '\"', ''),
    CASE WHEN type IN ('true', 'false', 'null') THEN type ELSE atom END
  FROM json_tree($(quote "$stats_json"), '\$.plugins.analytics') WHERE type NOT IN ('object', 'array')
  ORDER BY id") || fail "the stats answer is not JSON: $stats_json"
[ -n "$stats" ] || fail "the stats answer has no analytics plugin: $stats_json"
stat() { awk -F '\t' -v k="$1" '$1 == k { print $2; found = 1 } END { if (!found) print 0 }' <<<"$stats"; }

echo "demo: the analytics plugin's stats (zero counters and nulls left out):"
awk -F '\t' '$2 != "0" && $2 != "null" { printf "  %-28s %s\n", $1, $2 }' <<<"$stats"

if [ -n "$nats_pid" ]; then
  # Every message of the stream, read back by nats-cluster ("dump" ... "end").
  printf 'dump\n' >&4
  : > "$work/arrived.ndjson"
  while IFS= read -r -t 60 line <&5 && [ "$line" != end ]; do printf '%s\n' "$line" >> "$work/arrived.ndjson"; done
  echo "demo: messages in the NATS stream EVENTS (one per row, the row as JSON; header Nats-Msg-Id = event_id):"
  sed 's/^/  /' "$work/arrived.ndjson"
elif [ -n "$backend_pid" ]; then
  echo "demo: rows that arrived at the backend (one JSON object per row):"
  sed 's/^/  /' "$work/arrived.ndjson"
  echo "demo: backend requests:"
  sed 's/^/  /' "$work/backend.log"
else
  echo "demo: the anon key cannot read rows back (insert-only policy); see the table in your project."
fi
echo "demo: host-stub log (stderr):"
sed 's/^/  /' "$work/host.log"

# The summary: which mutations became no row, which properties were dropped
# and why. Mapped mutations and queued rows are paired in order (the queue
# was empty before, and nothing was dropped for the buffer or the store).
values=""
for m in "${mutations[@]}"; do
  values+="${values:+, }($(quote "${m%% *}"), $(quote "${m#* }"))"
done
reason_of_refused=""
refused_kinds=0
for kind in "email:e-mail address" "phone:phone number or date" "ip:IP address" "url:URL" \
  "long_number:long digit run"; do
  if [ "$(stat "properties_dropped.${kind%%:*}")" != 0 ]; then
    refused_kinds=$((refused_kinds + 1))
    reason_of_refused=${kind#*:}
  fi
done
[ "$refused_kinds" -eq 1 ] || reason_of_refused="value refused"
paired=$([ "$(stat stored)" = "$queued" ] && [ "$(stat dropped.buffer_full)$(stat dropped.store_error)" = 00 ] &&
  echo 1 || echo 0)
details=$(sql "$queued_db" -separator '' -cmd "CREATE TEMP TABLE m(seq INTEGER PRIMARY KEY, type, payload)" \
  -cmd "INSERT INTO m(type, payload) VALUES $values" "
  WITH cfg AS (SELECT key AS type, json_extract(value, '\$.properties') AS listed
                 FROM json_each(readfile($(quote "$work/host.json")), '\$.plugins[0].config.events')),
       mapped AS (SELECT row_number() OVER (ORDER BY seq) AS k, m.*, cfg.listed FROM m JOIN cfg USING (type)),
       rows AS (SELECT row_number() OVER (ORDER BY id) AS k, coalesce(properties, '{}') AS kept FROM analytics_queue),
       dropped AS (
         SELECT mapped.seq, j.id AS pos, j.key || ' (not listed)' AS what
           FROM mapped, json_each(mapped.payload) j
          WHERE j.key NOT IN (SELECT value FROM json_each(mapped.listed))
         UNION ALL
         SELECT mapped.seq, j.id, j.key || ' (' || $(quote "$reason_of_refused") || ')'
           FROM mapped JOIN rows USING (k), json_each(mapped.payload) j
          WHERE $paired AND j.key IN (SELECT value FROM json_each(mapped.listed))
            AND json_type(rows.kept, '\$.\"' || j.key || '\"') IS NULL)
  SELECT (SELECT coalesce(group_concat(type, ', '), '') FROM (SELECT DISTINCT type FROM m
           WHERE type NOT IN (SELECT type FROM cfg) ORDER BY seq))
      || char(9) || (SELECT coalesce(group_concat(what, ', '), '') FROM (SELECT what FROM dropped ORDER BY seq, pos))")
unmapped=${details%%$'\t'*}
dropped=${details#*$'\t'}
notes=()
[ -n "$unmapped" ] && notes+=("unmapped: $unmapped")
[ -n "$dropped" ] && notes+=("properties dropped: $dropped")
note=""
if [ ${#notes[@]} -gt 0 ]; then
  note=" (${notes[0]}${notes[1]:+; ${notes[1]}})"
fi
arrived=""
[ -n "$backend_pid" ] && arrived=", $(grep -c . "$work/arrived.ndjson" || true) arrived at the backend"
[ -n "$nats_pid" ] && arrived=", $(grep -c . "$work/arrived.ndjson" || true) in the NATS stream"
echo
echo "demo: summary"
echo "  ${#mutations[@]} mutations -> $queued rows queued$note"
echo "  -> $(stat delivered) delivered$arrived, $pending pending"
[ "$pending" = 0 ] || fail "not everything was delivered within 10 s (last_error: $(stat last_error))"
