//! `gridsync-server`: see [`gridsync_server::cli`].

#[global_allocator]
static ALLOCATOR: gridsync_server::Allocator = gridsync_server::Allocator;

fn main() -> anyhow::Result<()> {
    gridsync_server::cli::main()
}
