//! `config/net.toml` parses, validates and spells out the defaults; bad lines are refused
//! with the setting named.

use platform_net::NetConfig;

#[test]
fn example_net_config_parses_and_matches_defaults() {
    let cfg: NetConfig = toml::from_str(include_str!("../../config/net.toml")).expect("parses");
    assert_eq!(
        cfg,
        NetConfig::default(),
        "config/net.toml should spell out the defaults"
    );
    cfg.validate().expect("validates");
}

#[test]
fn bad_lines_are_refused_clearly() {
    let unknown = toml::from_str::<NetConfig>("listen_on = []")
        .unwrap_err()
        .to_string();
    assert!(unknown.contains("unknown field `listen_on`"), "{unknown}");
    let bad_duration = toml::from_str::<NetConfig>("request_timeout = \"soon\"")
        .unwrap_err()
        .to_string();
    assert!(bad_duration.contains("request_timeout"), "{bad_duration}");
    let cfg: NetConfig = toml::from_str("bootstrap = [\"/dns4/example.org/tcp/1\"]").unwrap();
    let e = cfg.validate().unwrap_err().to_string();
    assert!(
        e.contains("net.bootstrap") && e.contains("/p2p/PEER_ID"),
        "{e}"
    );
}
