#!/usr/bin/env bash
# Build the libFuzzer binary (coverage-guided, on stable Rust: LLVM's
# SanitizerCoverage passes through `-C passes`/`-C llvm-args`, libFuzzer
# from the libfuzzer-sys crate) and run every target for a bounded time,
# two at once. Usage:
#
#   tests/fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Exits non-zero if any target failed a property; its input is kept under
# $GRIDSYNC_FUZZ_WORK/artifacts (copy it to crashers/<target>/ with the fix).
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-25}"
shift || true

host="$(rustc -vV | sed -n 's/^host: //p')"
target_dir="${GRIDSYNC_FUZZ_TARGET_DIR:-$PWD/../../target/fuzz}"
work="${GRIDSYNC_FUZZ_WORK:-$target_dir/work}"
mkdir -p "$work/artifacts"

# cargo-fuzz's instrumentation, without its nightly-only sanitizer flags.
# `--target` keeps the flags off build scripts and proc macros.
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing"
started=$SECONDS
# Not `--locked`: when the workspace's dependencies change, Cargo adds what
# this lock file lacks rather than failing CI (commit the updated lock).
cargo build --release --quiet --target "$host" --target-dir "$target_dir"
echo "fuzz: built in $((SECONDS - started)) s"
bin="$target_dir/$host/release/gridsync-fuzz"

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(GRIDSYNC_FUZZ_TARGET=list "$bin" 2>/dev/null)
fi

run_one() {
    local t="$1" corpus="$work/corpus/$1"
    mkdir -p "$corpus" "crashers/$t"
    # The seeds are written into the corpus (kept between runs); past
    # crashers are read as a second corpus, never written to.
    GRIDSYNC_FUZZ_TARGET="$t" GRIDSYNC_FUZZ_SEEDS="$corpus" "$bin" "$corpus" "crashers/$t" \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=16384 \
        -artifact_prefix="$work/artifacts/$t-" -print_final_stats=1 \
        >"$work/$t.log" 2>&1
}

failed=()
running=0
for t in "${targets[@]}"; do
    (run_one "$t" && echo "fuzz: $t ok: $(grep -m1 'stat::number_of_executed_units' "$work/$t.log" | awk '{print $2}') runs, $(grep -c '^#[0-9]*.*NEW' "$work/$t.log" || true) new inputs" ||
        { echo "fuzz: $t FAILED (log: $work/$t.log)"; grep -m3 -E 'property failed|panicked|deadly|ERROR' "$work/$t.log" || true; exit 1; }) &
    running=$((running + 1))
    if [ "$running" -ge 2 ]; then
        wait -n || failed+=(x)
        running=$((running - 1))
    fi
done
while [ "$running" -gt 0 ]; do
    wait -n || failed+=(x)
    running=$((running - 1))
done
echo "fuzz: ${#targets[@]} targets, ${secs} s each, $((SECONDS - started)) s in all"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz: ${#failed[@]} target(s) failed; inputs in $work/artifacts" >&2
    ls -l "$work/artifacts" >&2
    exit 1
fi
