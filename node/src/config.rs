//! The node's configuration file: typed sections with defaults, unknown keys refused,
//! values and relations checked with messages that name the setting.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use platform_engine::EngineConfig;
use platform_net::NetConfig;
use serde::{Deserialize, Serialize};

/// A whole node config file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Identity, subnet and storage.
    pub node: NodeSection,
    /// The evaluation engine.
    #[serde(default)]
    pub engine: EngineConfig,
    /// The libp2p mesh.
    #[serde(default)]
    pub net: NetConfig,
    /// PBFT timing.
    #[serde(default)]
    pub consensus: ConsensusSection,
    /// Where weights go.
    pub chain: ChainSection,
    /// The Prometheus endpoint.
    #[serde(default)]
    pub metrics: MetricsSection,
}

/// `[node]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSection {
    /// Where redb files, the node key and the audit log live.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// The validator's Bittensor hotkey file (JSON with `secretSeed`).
    #[serde(default)]
    pub hotkey_file: Option<PathBuf>,
    /// A hex seed instead of a hotkey file: for devnets only.
    #[serde(default)]
    pub hotkey_seed: Option<String>,
    /// The subnet.
    pub netuid: u16,
    /// SS58 address of the subnet owner, whose signature registry changes need.
    pub subnet_owner: String,
    /// Blocks per evaluation epoch. Default: the subnet's tempo + 1, read from the chain,
    /// so epochs are the chain's own.
    #[serde(default)]
    pub epoch_blocks: Option<u64>,
    /// Fault injection for tests and fault campaigns: SIGUSR1 cuts the node off from every
    /// peer (it keeps running, as on the far side of a partition), SIGUSR2 lets it rejoin.
    /// Off by default; `platform devnet` turns it on.
    #[serde(default)]
    pub fault_signals: bool,
    /// Committed epochs whose submissions, results, audit records and batches the store
    /// keeps; older ones are deleted as epochs commit (their committed records stay).
    /// 0 keeps everything (an archive node). At least 2 × `consensus.checkpoint_interval`:
    /// peers catching up from a snapshot fetch the batches of the epochs after it.
    #[serde(default = "default_retain_epochs")]
    pub retain_epochs: u64,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("data")
}

fn default_retain_epochs() -> u64 {
    64
}

/// `[consensus]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsensusSection {
    /// Timeout of a round's first view.
    #[serde(with = "humantime_serde")]
    pub view_timeout: Duration,
    /// Cap on the view timeout as it doubles.
    #[serde(with = "humantime_serde")]
    pub view_timeout_max: Duration,
    /// Snapshot the applied state every this many heights (epochs); the following heights'
    /// values name the snapshot, and a node far behind catches up from it. A protocol
    /// constant: every validator of the subnet uses the same one.
    pub checkpoint_interval: u64,
    /// After an epoch's end block is seen: late submissions for half of it, batches at
    /// `settle`, the proposal at twice it.
    #[serde(with = "humantime_serde")]
    pub settle: Duration,
    /// The epoch consensus height 1 decides: every validator of a subnet uses the same one,
    /// like a chain's genesis. Default 0 on simulated chains (they start at block 0);
    /// required with `chain.mode = "subtensor"`.
    pub genesis_epoch: Option<u64>,
}

impl Default for ConsensusSection {
    fn default() -> Self {
        ConsensusSection {
            view_timeout: Duration::from_secs(2),
            view_timeout_max: Duration::from_secs(60),
            checkpoint_interval: 4,
            settle: Duration::from_secs(6),
            genesis_epoch: None,
        }
    }
}

/// `[chain]`: the simulated chain (devnets) or a subtensor node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum ChainSection {
    /// The in-process simulated subtensor.
    Sim {
        /// Blocks per epoch of the simulated subnet.
        #[serde(default = "default_tempo")]
        tempo: u16,
        /// Whether the simulated subnet requires commit-reveal.
        #[serde(default)]
        commit_reveal: bool,
        /// Wall-clock time per simulated block.
        #[serde(with = "humantime_serde", default = "default_block_time")]
        block_time: Duration,
        /// The subnet's neurons at genesis, in uid order (validators have stake).
        #[serde(default)]
        neurons: Vec<SimNeuron>,
    },
    /// The devnet's one shared simulated subtensor (`platform devnet` serves it on loopback).
    Devnet {
        /// `host:port` of the devnet's chain endpoint.
        url: String,
        /// Each request gives up after this.
        #[serde(with = "humantime_serde", default = "default_request_timeout")]
        request_timeout: Duration,
    },
    /// A real subtensor node.
    Subtensor {
        /// `ws://` or `wss://` URL.
        url: String,
        /// Each request gives up after this.
        #[serde(with = "humantime_serde", default = "default_request_timeout")]
        request_timeout: Duration,
        /// How to commit on a subnet with commit-reveal on: `auto` (the default: timelocked
        /// where the runtime offers it, else hash), `timelocked` or `hash`. An explicit mode
        /// the runtime lacks is refused at start, naming the call.
        #[serde(default)]
        commit_mode: CommitModeName,
        /// Seconds per block (12 on finney), to place timelock reveal rounds.
        #[serde(default = "default_block_seconds")]
        block_seconds: u64,
        /// Where metagraphs are read: `auto` (the default: one `SubnetInfoRuntimeApi`
        /// call where the runtime has it, stakes being the chain's stake weights; storage
        /// reads otherwise, stakes being `TotalHotkeyAlpha`), `runtime_api` or `storage`. The
        /// two weigh validators apart only with child hotkeys, but a roster names its kind:
        /// every validator of a subnet must use the same setting.
        #[serde(default)]
        metagraph: platform_chain::subtensor::MetagraphSource,
    },
}

/// A neuron of the simulated subnet's genesis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimNeuron {
    /// SS58 hotkey.
    pub hotkey: String,
    /// Stake (validators need some; miners have none).
    #[serde(default)]
    pub stake: u64,
}

fn default_block_time() -> Duration {
    Duration::from_secs(1)
}

fn default_tempo() -> u16 {
    99
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_block_seconds() -> u64 {
    12
}

/// How to commit when the subnet has commit-reveal on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommitModeName {
    /// What the runtime offers: timelocked commits where it has `commit_timelocked_weights`,
    /// else hash commits.
    #[default]
    Auto,
    /// drand-timelocked commits the chain reveals itself.
    Timelocked,
    /// Hash commits this node reveals.
    Hash,
}

/// `[metrics]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    /// Address of the `/metrics` HTTP endpoint.
    pub listen: SocketAddr,
}

impl Default for MetricsSection {
    fn default() -> Self {
        MetricsSection {
            listen: SocketAddr::from(([127, 0, 0, 1], 9615)),
        }
    }
}

/// A bad setting, named.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema (unknown keys included).
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A value or relation is out of range.
    #[error("{field}: {problem}")]
    Invalid {
        /// The setting.
        field: String,
        /// What is wrong.
        problem: String,
    },
}

fn invalid(field: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.into(),
        problem: problem.into(),
    }
}

impl NodeConfig {
    /// Read and check a config file.
    pub fn load(path: &std::path::Path) -> Result<NodeConfig, ConfigError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: p.clone(),
            source,
        })?;
        NodeConfig::parse(&text, &p)
    }

    /// Parse and check config text (`origin` names it in errors).
    pub fn parse(text: &str, origin: &str) -> Result<NodeConfig, ConfigError> {
        let cfg: NodeConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.into(),
            message: e.to_string(),
        })?;
        cfg.check()?;
        Ok(cfg)
    }

    /// Check every value and relation.
    pub fn check(&self) -> Result<(), ConfigError> {
        let n = &self.node;
        match (&n.hotkey_file, &n.hotkey_seed) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "node.hotkey_file",
                    "give hotkey_file or hotkey_seed, not both",
                ));
            }
            (None, None) => return Err(invalid("node.hotkey_file", "a hotkey is required")),
            (None, Some(seed)) => {
                platform_keys::Keypair::from_seed_hex(seed)
                    .map_err(|e| invalid("node.hotkey_seed", e.to_string()))?;
            }
            (Some(_), None) => {}
        }
        platform_keys::ss58_decode(&n.subnet_owner)
            .map_err(|e| invalid("node.subnet_owner", e.to_string()))?;
        if let Some(b) = n.epoch_blocks
            && b < crate::machine::EPOCH_BLOCKS_MIN
        {
            return Err(invalid(
                "node.epoch_blocks",
                format!(
                    "{b} blocks is too short; an epoch needs at least {}",
                    crate::machine::EPOCH_BLOCKS_MIN
                ),
            ));
        }
        self.engine
            .validate()
            .map_err(|e| invalid("engine", e.to_string()))?;
        self.net
            .clone()
            .validate()
            .map_err(|e| invalid("net", e.to_string()))?;
        let c = &self.consensus;
        if c.view_timeout.is_zero() || c.view_timeout > c.view_timeout_max {
            return Err(invalid(
                "consensus.view_timeout",
                "must be more than zero and at most view_timeout_max",
            ));
        }
        if c.settle.is_zero() {
            return Err(invalid("consensus.settle", "must be more than zero"));
        }
        if c.checkpoint_interval == 0 {
            return Err(invalid(
                "consensus.checkpoint_interval",
                "must be at least 1",
            ));
        }
        let keep_min = 2 * c.checkpoint_interval;
        if n.retain_epochs != 0 && n.retain_epochs < keep_min {
            return Err(invalid(
                "node.retain_epochs",
                format!(
                    "{} epochs is too few: keep 0 (everything) or at least {keep_min} \
                     (2 × consensus.checkpoint_interval), so peers catching up from a \
                     snapshot still find the batches after it",
                    n.retain_epochs
                ),
            ));
        }
        match &self.chain {
            ChainSection::Sim {
                tempo,
                block_time,
                neurons,
                ..
            } => {
                if *tempo == 0 {
                    return Err(invalid("chain.tempo", "must be at least 1"));
                }
                if block_time.is_zero() {
                    return Err(invalid("chain.block_time", "must be more than zero"));
                }
                let mut seen = std::collections::BTreeSet::new();
                for (i, nrn) in neurons.iter().enumerate() {
                    let key = platform_keys::ss58_decode(&nrn.hotkey).map_err(|e| {
                        invalid(&format!("chain.neurons[{i}].hotkey"), e.to_string())
                    })?;
                    if !seen.insert(key) {
                        return Err(invalid(
                            &format!("chain.neurons[{i}].hotkey"),
                            "appears twice",
                        ));
                    }
                }
                if !neurons.iter().any(|n| n.stake > 0) {
                    return Err(invalid(
                        "chain.neurons",
                        "the simulated subnet needs at least one validator with stake",
                    ));
                }
            }
            ChainSection::Devnet {
                url,
                request_timeout,
            } => {
                if url.parse::<SocketAddr>().is_err() {
                    return Err(invalid(
                        "chain.url",
                        format!("{url:?} is not host:port (e.g. 127.0.0.1:9944)"),
                    ));
                }
                if request_timeout.is_zero() {
                    return Err(invalid("chain.request_timeout", "must be more than zero"));
                }
            }
            ChainSection::Subtensor {
                url,
                request_timeout,
                block_seconds,
                ..
            } => {
                if !(url.starts_with("ws://") || url.starts_with("wss://")) {
                    return Err(invalid(
                        "chain.url",
                        format!("{url:?} is not a ws:// or wss:// URL"),
                    ));
                }
                if request_timeout.is_zero() {
                    return Err(invalid("chain.request_timeout", "must be more than zero"));
                }
                if *block_seconds == 0 {
                    return Err(invalid("chain.block_seconds", "must be at least 1"));
                }
            }
        }
        if matches!(self.chain, ChainSection::Subtensor { .. }) && c.genesis_epoch.is_none() {
            return Err(invalid(
                "consensus.genesis_epoch",
                "required on a real subnet: every validator must name the same first epoch",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWNER: &str = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY";

    fn base() -> String {
        format!(
            "[node]\nhotkey_seed = \"0x{}\"\nnetuid = 1\nsubnet_owner = \"{OWNER}\"\n\n[chain]\nmode = \"sim\"\nneurons = [{{ hotkey = \"{OWNER}\", stake = 1000 }}]\n",
            "11".repeat(32)
        )
    }

    #[test]
    fn the_smallest_config_takes_defaults() {
        let c = NodeConfig::parse(&base(), "t").unwrap();
        assert_eq!(c.node.data_dir, PathBuf::from("data"));
        assert_eq!(c.node.retain_epochs, 64);
        for keep in [0, 8] {
            let text = base().replace("netuid = 1", &format!("netuid = 1\nretain_epochs = {keep}"));
            assert_eq!(
                NodeConfig::parse(&text, "t").unwrap().node.retain_epochs,
                keep
            );
        }
        assert_eq!(c.engine, EngineConfig::default());
        assert_eq!(
            c.chain,
            ChainSection::Sim {
                tempo: 99,
                commit_reveal: false,
                block_time: Duration::from_secs(1),
                neurons: vec![SimNeuron {
                    hotkey: OWNER.into(),
                    stake: 1000
                }],
            }
        );
    }

    #[test]
    fn bad_lines_name_the_setting() {
        let cases = [
            (
                base().replace("netuid = 1", "netuid = 1\nnetuidd = 2"),
                "unknown field `netuidd`",
            ),
            (base().replace(OWNER, "5Grwva"), "node.subnet_owner"),
            (
                base().replace("netuid = 1", "netuid = 1\nepoch_blocks = 2"),
                "node.epoch_blocks",
            ),
            (
                base() + "\n[consensus]\nview_timeout = \"90s\"\n",
                "consensus.view_timeout",
            ),
            (
                base() + "\n[consensus]\nsettle = \"0s\"\n",
                "consensus.settle",
            ),
            (
                base()
                    .split("neurons")
                    .next()
                    .unwrap()
                    .replace("mode = \"sim\"", "mode = \"subtensor\"\nurl = \"http://x\""),
                "chain.url",
            ),
            (
                base().replace("mode = \"sim\"", "mode = \"moon\""),
                "unknown variant `moon`",
            ),
            (base() + "\n[net]\nmesh_n_low = 9\n", "net.mesh_n"),
            (base().replace("stake = 1000", "stake = 0"), "chain.neurons"),
            (
                base().replace("mode = \"sim\"", "mode = \"sim\"\nblock_time = \"0s\""),
                "chain.block_time",
            ),
            (base() + "\n[engine]\nin_flight_per_shard = 0\n", "engine"),
            (
                base().replace("hotkey_seed", "hotkey_file = \"h\"\nhotkey_seed"),
                "not both",
            ),
            (
                base().replace("netuid = 1", "netuid = 1\nretain_epochs = 7"),
                "node.retain_epochs",
            ),
            (
                base().replace("netuid = 1", "netuid = 1\nretain_epochs = 9")
                    + "\n[consensus]\ncheckpoint_interval = 5\n",
                "at least 10",
            ),
        ];
        for (text, expect) in cases {
            let e = NodeConfig::parse(&text, "t").unwrap_err().to_string();
            assert!(e.contains(expect), "{e:?} should mention {expect:?}");
        }
    }
}
