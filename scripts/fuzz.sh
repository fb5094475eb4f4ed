#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/) with clang under ASan + UBSan and runs
# each for a bounded time, starting from its committed seed corpus.
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
# Defaults: 30 s, every target. Warnings are not errors here (the GCC builds hold
# the zero-warning line; clang knows other warning groups). Build directory: $FUZZ_BUILD_DIR (default
# build-fuzz). New inputs the fuzzer finds go to a temporary corpus, not into
# fuzz/corpus; a crash leaves its input in $FUZZ_ARTIFACTS (default
# build-fuzz/artifacts), prints it and exits non-zero. To fuzz one target
# longer, e.g. for an hour with two jobs, keeping what it finds:
#   build-fuzz/bin/fuzz_event_mapper -max_total_time=3600 -jobs=2 my-corpus fuzz/corpus/fuzz_event_mapper
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-30}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(fuzz_host_command fuzz_config fuzz_event_mapper fuzz_transport_reply fuzz_ndjson_scan)
build_dir=${FUZZ_BUILD_DIR:-"$root/build-fuzz"}
artifacts=${FUZZ_ARTIFACTS:-"$build_dir/artifacts"}

command -v clang++ >/dev/null || { echo "fuzz: clang++ not found (scripts/setup.sh installs it)" >&2; exit 1; }
cmake -S "$root" -B "$build_dir" -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DWEP_FUZZ=ON -DWEP_BUILD_TESTS=OFF -DWEP_WERROR=OFF \
  -DWEP_SANITIZE=address,undefined -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build_dir" -j "$(nproc)" --target "${targets[@]}"  # and what they need, nothing else

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
mkdir -p "$artifacts"
work=$(mktemp -d /tmp/wep-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT
failed=()
for target in "${targets[@]}"; do
  binary="$build_dir/bin/$target"
  seeds="$root/fuzz/corpus/$target"
  [ -x "$binary" ] || { echo "fuzz: no target $binary" >&2; exit 1; }
  mkdir -p "$work/$target"
  echo "== $target: ${seconds}s from $(find "$seeds" -type f | wc -l) seeds"
  status=0
  TMPDIR="$work" "$binary" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2560 -max_len=262144 -print_final_stats=1 \
    -artifact_prefix="$artifacts/$target-" "$work/$target" "$seeds" >"$work/$target.log" 2>&1 || status=$?
  grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb)' "$work/$target.log" || true
  if [ "$status" -ne 0 ]; then
    echo "fuzz: $target FAILED (exit $status); the end of its log:" >&2
    tail -n 60 "$work/$target.log" >&2
    ls -1 "$artifacts/$target-"* 2>/dev/null >&2 || true
    failed+=("$target")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: failing targets: ${failed[*]} (inputs in $artifacts; add each to fuzz/corpus/<target> and a regression test)" >&2
  exit 1
fi
echo "fuzz: all ${#targets[@]} targets ran ${seconds}s each without a finding"
