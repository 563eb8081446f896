//! The UniFFI bindings generator, built from this workspace's lockfile so the
//! generated Kotlin, Swift and Python match the library's UniFFI version.
//! Run by `ffi/generate-bindings.sh`.

fn main() {
    uniffi::uniffi_bindgen_main();
}
