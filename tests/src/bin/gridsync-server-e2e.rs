//! The server binary the end-to-end tests start: the same command line as
//! `gridsync-server`, built as part of this package so that `cargo test`
//! always runs the tests against the current code.

#[global_allocator]
static ALLOCATOR: gridsync_server::Allocator = gridsync_server::Allocator;

fn main() -> anyhow::Result<()> {
    gridsync_server::cli::main()
}
