#!/usr/bin/env bash
# Checks the installed SDK the way a user meets it:
#   scripts/check-install.sh [BUILD_DIR]     (default: build; configured and built if needed)
# installs BUILD_DIR into a temporary prefix, then, against that prefix only:
#   - the package's files are where the README says;
#   - examples/transport configures and builds with find_package(wep) + wep_add_plugin,
#     and exports only wep_plugin_entry (as do the installed plugins);
#   - the installed host-stub runs the installed analytics plugin with the example
#     transport end to end, and a config without "path" is refused naming it;
#   - examples/c_plugin compiles with nothing but pkg-config (wep-plugin-api.pc);
#   - examples/host configures, builds and runs: its 5 mapped mutations arrive in NDJSON;
#   - the project works as a subproject (add_subdirectory): examples/host built and run that way.
# Prints each check; exits non-zero at the first failure.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build_dir=$(cd "${1:-$root/build}" 2>/dev/null && pwd) || { echo "check-install: no build directory ${1:-$root/build}" >&2; exit 1; }

work=$(mktemp -d /tmp/wep-check-install.XXXXXX)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix

step() { echo "check-install: $*"; }
fail() { echo "check-install: FAILED: $*" >&2; exit 1; }

# Only wep_plugin_entry may be exported (defined dynamic symbols).
check_exports() {
  local exports
  exports=$(nm -D --defined-only "$1" | awk '{print $3}' | sort -u | tr '\n' ' ')
  [ "$exports" = "wep_plugin_entry " ] || fail "$1 exports: $exports(expected only wep_plugin_entry)"
  step "  $(basename "$1"): exports only wep_plugin_entry"
}

step "building $build_dir"
cmake --build "$build_dir" -j "$(nproc)" >/dev/null

step "installing into $prefix"
cmake --install "$build_dir" --prefix "$prefix" >/dev/null
libdir=$(sed -n 's/^CMAKE_INSTALL_LIBDIR:PATH=//p' "$build_dir/CMakeCache.txt")
libdir=${libdir:-lib}
version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$build_dir/CMakeCache.txt")

step "installed files"
for file in \
  include/wep/plugin_api.h include/wep/plugin.hpp include/wep/plugin_host.hpp include/wep/version.h \
  "$libdir/cmake/wep/wepConfig.cmake" "$libdir/cmake/wep/wepConfigVersion.cmake" \
  "$libdir/cmake/wep/wepTargets.cmake" "$libdir/cmake/wep/WepPlugin.cmake" "$libdir/cmake/wep/plugin_exports.map" \
  "$libdir/pkgconfig/wep-plugin-api.pc" \
  "$libdir/wep/plugins/libwep_analytics.so" "$libdir/wep/plugins/libwep_supabase.so" "$libdir/wep/plugins/libwep_ndjson.so" \
  bin/host-stub bin/test-backend \
  share/wep/schemas/analytics_queue.sql share/wep/schemas/analytics_events.postgres.sql \
  share/wep/schemas/analytics_config.schema.json; do
  [ -e "$prefix/$file" ] || fail "missing $file"
done
grep -q "WEP_VERSION_STRING \"$version\"" "$prefix/include/wep/version.h" || fail "version.h does not say $version"
for plugin in "$prefix/$libdir/wep/plugins"/*test*; do [ -e "$plugin" ] && fail "test plugin installed: $plugin"; done
step "  all present, version $version"

step "the host library's interface names no SQLite, Poco or RapidJSON"
if grep -rliE "sqlite|poco|rapidjson" "$prefix/include"; then fail "an installed header names SQLite, Poco or RapidJSON"; fi
host_link=$(grep -A4 "add_library(wep::host " "$prefix/$libdir/cmake/wep/wepTargets.cmake" | grep INTERFACE_LINK_LIBRARIES || true)
case "$host_link" in *[Ss][Qq][Ll]ite* | *Poco* | *RapidJSON*) fail "wep::host links: $host_link" ;; esac
step "  wep::host links:${host_link#*INTERFACE_LINK_LIBRARIES}"

step "installed plugins"
for plugin in "$prefix/$libdir/wep/plugins"/*.so; do check_exports "$plugin"; done

step "examples/transport against the installed package"
cmake -S "$root/examples/transport" -B "$work/transport" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$work/transport.log" 2>&1 || { cat "$work/transport.log" >&2; fail "configure"; }
cmake --build "$work/transport" >>"$work/transport.log" 2>&1 || { cat "$work/transport.log" >&2; fail "build"; }
event_log=$work/transport/libevent_log.so
check_exports "$event_log"

step "installed host-stub + analytics plugin + example transport, end to end"
write_host_config() {  # $1 = file, $2 = the transport's config
  cat >"$1" <<JSON
{
  "data_dir": "data",
  "settings": {"analytics_enabled": true},
  "plugins": [{
    "path": "$prefix/$libdir/wep/plugins/libwep_analytics.so",
    "config": {
      "flush_interval_ms": 100,
      "events": {"note.created": {"event_type": "note_created", "properties": ["word_count"]}},
      "transport": {"plugin": "$event_log", "config": $2}
    }
  }]
}
JSON
}
mkdir -p "$work/run"
write_host_config "$work/run/host.json" '{"path": "events.log"}'
replies=$(printf '%s\n' 'mutate note.created {"word_count": 3}' 'mutate note.created {"word_count": 5}' \
  online 'wait-delivered 20000' quit | "$prefix/bin/host-stub" --config "$work/run/host.json" 2>"$work/run/stderr") ||
  { cat "$work/run/stderr" >&2; fail "host-stub exited with an error"; }
echo "$replies" | grep -qx "pending 0" || { echo "$replies" >&2; cat "$work/run/stderr" >&2; fail "not delivered"; }
events_file=$(find "$work/run/data" -name events.log)
if [ -z "$events_file" ] || [ "$(grep -c ' note_created$' "$events_file")" != 2 ]; then
  cat "$work/run/stderr" "$events_file" >&2 || true
  fail "expected 2 note_created lines in the example transport's file"
fi
step "  2 events delivered through libevent_log.so into ${events_file#"$work/"}"

mkdir -p "$work/bad"
write_host_config "$work/bad/host.json" '{}'
status=0
echo quit | "$prefix/bin/host-stub" --config "$work/bad/host.json" >/dev/null 2>"$work/bad/stderr" || status=$?
if [ "$status" != 2 ] || ! grep -q '/path' "$work/bad/stderr"; then
  cat "$work/bad/stderr" >&2
  fail "a transport config without path was not refused (exit $status)"
fi
step "  a config without \"path\" is refused: $(grep -o 'event_log config:.*' "$work/bad/stderr" | head -1)"

step "pkg-config wep-plugin-api + examples/c_plugin"
export PKG_CONFIG_PATH=$prefix/$libdir/pkgconfig
[ "$(pkg-config --modversion wep-plugin-api)" = "$version" ] || fail "pkg-config --modversion is not $version"
cflags=$(pkg-config --cflags wep-plugin-api)
# shellcheck disable=SC2086  # cflags is a word list
cc -std=c11 -Wall -Wextra -Werror -pedantic -fsyntax-only $cflags "$root/examples/c_plugin/discard_transport.c" ||
  fail "C syntax check with $cflags"
# shellcheck disable=SC2086
cc -std=c11 -Wall -Wextra -Werror -shared -fPIC -fvisibility=hidden $cflags \
  "$root/examples/c_plugin/discard_transport.c" -o "$work/libdiscard.so" || fail "C plugin build"
check_exports "$work/libdiscard.so"

if [ -f "$root/examples/host/CMakeLists.txt" ]; then
  step "examples/host against the installed package"
  cmake -S "$root/examples/host" -B "$work/host" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$work/host.log" 2>&1 || { cat "$work/host.log" >&2; fail "configure"; }
  cmake --build "$work/host" >>"$work/host.log" 2>&1 || { cat "$work/host.log" >&2; fail "build"; }
  step "  runs: embeds the coordinator and plugin manager, loads the installed analytics plugin"
  "$work/host/example-host" "$work/host-data" "$prefix/$libdir/wep/plugins" >"$work/host.out" 2>"$work/host.err" ||
    { cat "$work/host.out" "$work/host.err" >&2; fail "example-host exited with $?"; }
  grep -q "committed 6 mutations, indexed 6, pending 0" "$work/host.out" ||
    { cat "$work/host.out" "$work/host.err" >&2; fail "example-host did not deliver everything"; }
  arrived=$work/host-data/plugins/analytics/transport/events.ndjson
  [ "$(wc -l <"$arrived")" -eq 5 ] || { cat "$arrived" >&2; fail "expected 5 delivered rows in $arrived"; }
  [ "$(grep -c '"event_type":"note_created"' "$arrived")" -eq 5 ] || { cat "$arrived" >&2; fail "unexpected event types"; }
  for count in 10 20 30 40 50; do
    grep -q "\"word_count\":$count[,}]" "$arrived" || { cat "$arrived" >&2; fail "word_count $count missing"; }
  done
  if grep -q private "$arrived"; then cat "$arrived" >&2; fail "a property that is not listed was delivered"; fi
  step "  5 rows delivered to NDJSON, unlisted properties and the unmapped type left out"
fi

step "the project as a subproject (add_subdirectory): libraries and plugins only, no tests or tools"
mkdir -p "$work/outer"
cat >"$work/outer/CMakeLists.txt" <<CMAKE
cmake_minimum_required(VERSION 3.25)
project(outer LANGUAGES CXX)
add_subdirectory("$root" wep)
add_executable(example-host "$root/examples/host/main.cpp")
target_compile_features(example-host PRIVATE cxx_std_20)
target_link_libraries(example-host PRIVATE wep::host)
target_compile_definitions(example-host PRIVATE WEP_EXAMPLE_PLUGIN_DIR="\${CMAKE_BINARY_DIR}/wep/plugins")
CMAKE
cmake -S "$work/outer" -B "$work/outer/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$work/outer.log" 2>&1 ||
  { cat "$work/outer.log" >&2; fail "configure as a subproject"; }
cmake --build "$work/outer/build" >>"$work/outer.log" 2>&1 || { cat "$work/outer.log" >&2; fail "build as a subproject"; }
[ -e "$work/outer/build/wep/bin/host-stub" ] && fail "a subproject build built the tools"
ls "$work/outer/build/wep/bin" 2>/dev/null | grep -q test && fail "a subproject build built tests"
"$work/outer/build/example-host" "$work/outer-data" >"$work/outer.out" 2>&1 ||
  { cat "$work/outer.out" >&2; fail "example-host (subproject build) exited with $?"; }
grep -q "pending 0" "$work/outer.out" || { cat "$work/outer.out" >&2; fail "subproject example-host did not deliver"; }
step "  built and ran examples/host against the subproject's wep::host and plugins"

step "all checks passed"
