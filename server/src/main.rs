//! `gridsync-server`: see [`gridsync_server::cli`].

fn main() -> anyhow::Result<()> {
    gridsync_server::cli::main()
}
