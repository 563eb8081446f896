#!/usr/bin/env bash
# Build libgridsync_ffi and generate its Kotlin, Swift and Python bindings
# with the uniffi-bindgen built from this workspace's lockfile.
#
#   ffi/generate-bindings.sh                  # all three, debug build
#   ffi/generate-bindings.sh python           # only Python
#   PROFILE=release ffi/generate-bindings.sh  # from a release build
#
# Output: $OUT_DIR/<language>/ (default target/bindings). The Python
# directory also gets a copy of the library, which the module loads from
# its own directory.
set -euo pipefail
cd "$(dirname "$0")/.."

profile="${PROFILE:-debug}"
target_dir="${CARGO_TARGET_DIR:-target}"
out_dir="${OUT_DIR:-$target_dir/bindings}"
# Cargo sets OUT_DIR for build scripts; one inherited from the caller (a
# test, a shell) must not reach the crates built below.
unset OUT_DIR
languages=("$@")
[ ${#languages[@]} -eq 0 ] && languages=(kotlin swift python)

cargo_flags=(-p gridsync-ffi --lib --bin uniffi-bindgen)
[ "$profile" = release ] && cargo_flags+=(--release)
"${CARGO:-cargo}" build "${cargo_flags[@]}"

case "$(uname -s)" in
    Darwin) lib_name=libgridsync_ffi.dylib ;;
    *) lib_name=libgridsync_ffi.so ;;
esac
lib="$target_dir/$profile/$lib_name"
bindgen="$target_dir/$profile/uniffi-bindgen"

for lang in "${languages[@]}"; do
    mkdir -p "$out_dir/$lang"
    # --no-format: the same output whether or not ktlint/swiftformat/yapf
    # happen to be installed.
    "$bindgen" generate --library "$lib" --language "$lang" --no-format --out-dir "$out_dir/$lang"
done
if [[ " ${languages[*]} " == *" python "* ]]; then
    cp "$lib" "$out_dir/python/"
fi
echo "bindings in $out_dir: ${languages[*]}"
