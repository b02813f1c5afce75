//! `platform`: the validator node's command line (see `platform --help`).

fn main() -> anyhow::Result<()> {
    platform_node::cli::main()
}
