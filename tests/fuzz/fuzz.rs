//! One libFuzzer binary for every target: `GRIDSYNC_FUZZ_TARGET` names the
//! target (`gridsync_fuzz_targets::TARGETS`; `list` prints them), so the
//! instrumented build links once; `GRIDSYNC_FUZZ_SEEDS` names a folder to
//! write the target's seeds into first. `run.sh` builds it and runs each
//! target in turn.

#![no_main]

use gridsync_fuzz_targets::alloc::CountingAlloc;
use gridsync_fuzz_targets::{TARGETS, Target, seeds, target};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

static TARGET: std::sync::OnceLock<Target> = std::sync::OnceLock::new();

fn setup() {
    let name = std::env::var("GRIDSYNC_FUZZ_TARGET").unwrap_or_default();
    if name == "list" {
        for t in TARGETS {
            println!("{}", t.name);
        }
        std::process::exit(0);
    }
    let Some(t) = target(&name) else {
        eprintln!("set GRIDSYNC_FUZZ_TARGET to one of the targets (or `list`), not {name:?}");
        std::process::exit(2)
    };
    if let Ok(dir) = std::env::var("GRIDSYNC_FUZZ_SEEDS") {
        for (i, s) in seeds::seeds(t.name).into_iter().enumerate() {
            if let Err(e) = std::fs::write(std::path::Path::new(&dir).join(format!("seed-{i}")), s) {
                eprintln!("cannot write the seeds into {dir}: {e}");
                std::process::exit(2)
            }
        }
    }
    gridsync_fuzz_targets::init();
    let _ = TARGET.set(t);
}

libfuzzer_sys::fuzz_target!(init: setup(), |data: &[u8]| {
    if let Some(t) = TARGET.get() {
        gridsync_fuzz_targets::run(t.check, data);
    }
});
