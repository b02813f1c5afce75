//! The example files in `config/` parse and validate, and spell out the defaults.

use platform_engine::{ChallengePolicy, EngineConfig};

#[test]
fn example_engine_config_parses_and_matches_defaults() {
    let cfg: EngineConfig =
        toml::from_str(include_str!("../../config/engine.toml")).expect("parses");
    let valid = cfg.validate().expect("validates");
    assert!(valid.shards >= 1);
    let defaults = EngineConfig {
        artifact_cache_dir: cfg.artifact_cache_dir.clone(),
        ..EngineConfig::default()
    };
    assert_eq!(
        cfg, defaults,
        "config/engine.toml should spell out the defaults"
    );
}

#[test]
fn example_policy_parses_and_matches_defaults() {
    let policy: ChallengePolicy =
        toml::from_str(include_str!("../../config/challenge-policy.toml")).expect("parses");
    let engine = EngineConfig::default().validate().unwrap();
    policy.validate(&engine).expect("validates");
    assert_eq!(policy, ChallengePolicy::default());
}

#[test]
fn a_bad_line_is_a_clear_error() {
    let err = toml::from_str::<EngineConfig>("queue_depth_max = \"lots\"\n").unwrap_err();
    assert!(err.to_string().contains("queue_depth_max"), "{err}");
    let cfg: EngineConfig = toml::from_str("queue_depth_max = 0\n").unwrap();
    assert!(
        cfg.validate()
            .unwrap_err()
            .to_string()
            .contains("queue_depth_max")
    );
}
