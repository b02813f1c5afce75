//! The `platform` command line, built inside this package for the end-to-end tests.

fn main() -> anyhow::Result<()> {
    platform_node::cli::main()
}
