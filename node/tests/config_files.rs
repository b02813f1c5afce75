//! The example node configs in `config/` parse and pass every check.

use platform_node::config::{ChainSection, NodeConfig};

#[test]
fn example_validator_config_is_valid() {
    let c = NodeConfig::parse(
        include_str!("../../config/validator.toml"),
        "validator.toml",
    )
    .unwrap();
    assert!(matches!(c.chain, ChainSection::Subtensor { .. }));
    assert!(c.node.hotkey_file.is_some());
}

#[test]
fn example_devnet_config_is_valid() {
    let c = NodeConfig::parse(include_str!("../../config/devnet.toml"), "devnet.toml").unwrap();
    assert!(matches!(c.chain, ChainSection::Devnet { .. }));
    assert_eq!(c.node.epoch_blocks, Some(20));
    assert!(!c.engine.pin_shards);
}
