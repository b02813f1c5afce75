//! Start-up: the keys a config names, the chain backend, and what the epoch machine resumes
//! from after a restart (read from the store).

use std::path::Path;

use anyhow::Context as _;
use platform_chain::submit::CommitMode;
use platform_engine::{ChallengePolicy, EvalResult};
use platform_keys::Keypair;

use crate::chainsvc::{self, Backend};
use crate::config::{ChainSection, CommitModeName, NodeConfig};
use crate::machine::{Arrival, Hotkey, Restored};
use crate::registry::{ChallengeMeta, Registry};
use crate::store::{META_APPLIED_HEIGHT, META_LAST_EPOCH, META_REGISTRY_NONCE, Store};

/// Epochs before the current one whose kept submissions are restored after a restart.
const RESTORE_EPOCHS: u64 = 8;

/// Load the hotkey a config names.
pub fn load_hotkey(cfg: &NodeConfig, base: &Path) -> anyhow::Result<Keypair> {
    match (&cfg.node.hotkey_file, &cfg.node.hotkey_seed) {
        (Some(f), _) => {
            let p = if f.is_absolute() {
                f.clone()
            } else {
                base.join(f)
            };
            Keypair::from_hotkey_file(&p).with_context(|| format!("hotkey file {}", p.display()))
        }
        (None, Some(seed)) => Ok(Keypair::from_seed_hex(seed)?),
        (None, None) => anyhow::bail!("no hotkey configured"),
    }
}

/// The libp2p node key in `data_dir/node_key` (hex), created on first start.
pub fn node_key(data_dir: &Path) -> anyhow::Result<[u8; 32]> {
    let path = data_dir.join("node_key");
    if let Ok(text) = std::fs::read_to_string(&path) {
        let bytes = hex::decode(text.trim()).context("node_key is not hex")?;
        return bytes
            .try_into()
            .map_err(|_| anyhow::anyhow!("{}: not 32 bytes", path.display()));
    }
    let mut key = [0u8; 32];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut key)?;
    write_node_key(data_dir, &key)?;
    Ok(key)
}

/// Write a node key file (the devnet writes them so it knows every peer id ahead).
pub fn write_node_key(data_dir: &Path, key: &[u8; 32]) -> anyhow::Result<()> {
    std::fs::create_dir_all(data_dir)?;
    let tmp = data_dir.join("node_key.tmp");
    std::fs::write(&tmp, hex::encode(key))?;
    std::fs::rename(&tmp, data_dir.join("node_key"))?;
    Ok(())
}

pub(crate) fn policy_of(meta: &ChallengeMeta) -> ChallengePolicy {
    ChallengePolicy {
        fuel_limit: meta.limits.fuel,
        memory_limit_bytes: meta.limits.memory_bytes,
        input_max_bytes: u64::from(meta.limits.input_bytes),
        output_max_bytes: u64::from(meta.limits.output_bytes),
        ..ChallengePolicy::default()
    }
}

/// The chain backend a config names, and how weights are committed on it.
pub(crate) fn backend(cfg: &NodeConfig, me: &Keypair) -> anyhow::Result<(Backend, CommitMode)> {
    let netuid = cfg.node.netuid;
    Ok(match &cfg.chain {
        ChainSection::Sim {
            tempo,
            commit_reveal,
            block_time,
            neurons,
        } => {
            let genesis: Vec<([u8; 32], u64)> = neurons
                .iter()
                .map(|n| Ok((platform_keys::ss58_decode(&n.hotkey)?, n.stake)))
                .collect::<anyhow::Result<_>>()?;
            (
                Backend::Sim {
                    chain: chainsvc::sim_chain(netuid, *tempo, *commit_reveal, &genesis),
                    block_time: *block_time,
                },
                CommitMode::Hash,
            )
        }
        ChainSection::Devnet {
            url,
            request_timeout,
        } => (
            Backend::Remote(crate::chainserver::RemoteChain::new(url, *request_timeout)),
            CommitMode::Hash,
        ),
        ChainSection::Subtensor {
            url,
            request_timeout,
            commit_mode,
            block_seconds,
            metagraph,
        } => {
            let signer = platform_chain::extrinsic::ChainSigner::from_seed(me.secret_seed())?;
            let client = platform_chain::subtensor::Subtensor::connect(
                &platform_chain::subtensor::SubtensorConfig {
                    url: url.clone(),
                    request_timeout: *request_timeout,
                    metagraph: *metagraph,
                },
                signer,
            )?;
            tracing::info!(
                "metagraph ({} in the config): {}",
                metagraph.as_str(),
                client.metagraph_reads()?
            );
            let support = client.commit_support()?;
            let mode = commit_mode_for(*commit_mode, support, *block_seconds)?;
            tracing::info!(
                "commit mode (when the subnet has commit-reveal on): {} ({commit_mode:?} in the \
                 config; the runtime offers hash commits: {}, timelocked commits: {})",
                match mode {
                    CommitMode::Hash => "hash commits this node reveals".to_string(),
                    CommitMode::Timelocked { version, .. } =>
                        format!("timelocked commits, commit-reveal version {version}"),
                },
                support.hash,
                support
                    .timelocked
                    .map_or("no".to_string(), |v| format!("version {v}")),
            );
            (Backend::Subtensor(client), mode)
        }
    })
}

/// Open one of the node's redb files, or say which file is damaged and what to do: never a
/// silent fresh start. (redb starts a new database in an empty file, so an empty file, as a
/// truncation leaves it, is refused before redb sees it.)
pub(crate) fn open_store<T, E: std::fmt::Display>(
    path: &Path,
    open: impl FnOnce(&Path) -> Result<T, E>,
) -> anyhow::Result<T> {
    let what_to_do = "restore it from a backup, or move it aside to start this node afresh \
                      (it then catches up from its peers; a moved-aside consensus.redb forgets \
                      this node's own votes, so do that only once the epochs it voted on are \
                      committed)";
    if std::fs::metadata(path).is_ok_and(|m| m.len() == 0) {
        anyhow::bail!(
            "{} is empty (0 bytes): it was truncated, and starting on it would silently \
             start afresh; {what_to_do}",
            path.display()
        );
    }
    open(path).map_err(|e| {
        anyhow::anyhow!(
            "{} cannot be opened ({e}): the file is damaged or not a redb database; {what_to_do}",
            path.display()
        )
    })
}

/// The commit mode a config asks for, as the runtime supports it: `auto` takes timelocked
/// commits where offered, else hash commits; an explicit mode the runtime lacks is an error
/// naming the call.
pub(crate) fn commit_mode_for(
    asked: CommitModeName,
    support: platform_chain::subtensor::CommitSupport,
    block_seconds: u64,
) -> anyhow::Result<CommitMode> {
    let timelocked = |version| CommitMode::Timelocked {
        block_seconds,
        version,
    };
    match (asked, support.timelocked, support.hash) {
        (CommitModeName::Auto | CommitModeName::Timelocked, Some(v), _) => Ok(timelocked(v)),
        (CommitModeName::Auto | CommitModeName::Hash, _, true) => Ok(CommitMode::Hash),
        (CommitModeName::Timelocked, None, _) => anyhow::bail!(
            "chain.commit_mode = \"timelocked\" needs SubtensorModule::commit_timelocked_weights, \
             which this runtime lacks: use \"hash\" or \"auto\""
        ),
        (CommitModeName::Hash, _, false) => anyhow::bail!(
            "chain.commit_mode = \"hash\" needs SubtensorModule::commit_weights and \
             reveal_weights, which this runtime lacks: use \"timelocked\" or \"auto\""
        ),
        (CommitModeName::Auto, None, false) => anyhow::bail!(
            "this runtime has neither commit_timelocked_weights nor commit_weights: weights \
             cannot be committed on a subnet with commit-reveal on"
        ),
    }
}

/// Where this node's hotkey stands on its subnet, in one line for the log and `status`:
/// the cases an operator must tell apart. A subnet that does not exist is an error.
pub(crate) fn standing(
    chain: &dyn platform_chain::Chain,
    netuid: u16,
    hotkey: &Hotkey,
) -> anyhow::Result<String> {
    use platform_chain::{ChainError, PalletError};
    let not_there = |e: ChainError| match e {
        ChainError::Pallet(PalletError::SubnetNotExists) => {
            anyhow::anyhow!("subnet {netuid} does not exist on this chain (check node.netuid)")
        }
        e => anyhow::Error::new(e).context(format!("reading subnet {netuid}")),
    };
    chain.hyperparams(netuid).map_err(not_there)?;
    let m = chain.metagraph(netuid).map_err(not_there)?;
    let me = platform_keys::ss58_encode(hotkey);
    Ok(match m.neurons.iter().find(|n| n.hotkey == *hotkey) {
        None => format!(
            "hotkey {me} is not registered on subnet {netuid}: this node follows and sets no \
             weights until it is"
        ),
        Some(n) if !n.validator_permit => format!(
            "hotkey {me} is registered on subnet {netuid} as uid {} but has no validator \
             permit (stake {}): this node follows until it has one",
            n.uid, n.stake
        ),
        Some(n) if n.stake == 0 => format!(
            "hotkey {me} is uid {} on subnet {netuid} with a validator permit but no stake: \
             this node follows until it has stake",
            n.uid
        ),
        Some(n) => format!(
            "hotkey {me} is uid {} on subnet {netuid} with a validator permit (stake {})",
            n.uid, n.stake
        ),
    })
}

/// What the machine resumes from: the store's registry, applied height, batches and the
/// kept submissions of recent epochs with their scores.
pub(crate) fn restored(store: &Store, owner: Hotkey, current: u64) -> anyhow::Result<Restored> {
    let registry = Registry::restore(
        owner,
        &store.registry()?,
        store.meta(META_REGISTRY_NONCE)?.unwrap_or(0),
    )
    .map_err(|e| anyhow::anyhow!("stored registry: {e}"))?;
    let last_epoch = store.meta(META_LAST_EPOCH)?;
    let from = last_epoch
        .map_or(0, |e| e + 1)
        .max(current.saturating_sub(RESTORE_EPOCHS));
    let mut submissions = Vec::new();
    for kept in store.counted_kept_from(from)? {
        let score = store
            .result(kept.epoch, &kept.id)?
            .map(|c| EvalResult::agreed_score(&c));
        submissions.push((
            Arrival {
                id: kept.id,
                author: kept.miner,
                challenge: kept.challenge,
                epoch: kept.epoch,
                body: kept.body,
                envelope: kept.envelope,
            },
            score,
        ));
    }
    Ok(Restored {
        registry: Some(registry),
        applied_height: store.meta(META_APPLIED_HEIGHT)?.unwrap_or(0),
        last_epoch,
        batches: store.batches_from(last_epoch.map_or(0, |e| e + 1))?,
        submissions,
        modules: store.module_hashes()?.into_iter().collect(),
        snapshots: store.snapshot_refs()?,
    })
}

#[cfg(test)]
mod tests {
    use platform_chain::sim::{SimChain, SubnetGenesis};

    fn chain() -> SimChain {
        SimChain::new(
            [1; 32],
            vec![SubnetGenesis {
                netuid: 3,
                hyperparams: platform_chain::Hyperparams {
                    tempo: 9,
                    commit_reveal_enabled: false,
                    commit_reveal_period: 1,
                    weights_version_key: 0,
                    weights_rate_limit: 0,
                    min_allowed_weights: 1,
                    max_weight_limit: u16::MAX,
                },
                max_uids: 8,
                max_validators: 1,
                min_stake_to_set_weights: 1,
                neurons: vec![([1; 32], 500), ([2; 32], 100)],
            }],
        )
    }

    #[test]
    fn a_damaged_or_truncated_store_is_named_with_what_to_do_never_opened_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.redb");
        std::fs::write(&path, b"").unwrap();
        let e = super::open_store(&path, crate::store::Store::open)
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(e.contains("node.redb is empty (0 bytes)"), "{e}");
        assert!(e.contains("restore it from a backup"), "{e}");
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0, "left as it was");
        std::fs::write(&path, vec![0xab; 4096]).unwrap();
        let e = super::open_store(&path, crate::store::Store::open)
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(e.contains("node.redb cannot be opened"), "{e}");
        assert!(e.contains("damaged"), "{e}");
        // A real store opens, and a missing one is created.
        std::fs::remove_file(&path).unwrap();
        super::open_store(&path, crate::store::Store::open).unwrap();
        super::open_store(&path, crate::store::Store::open).unwrap();
    }

    #[test]
    fn commit_mode_auto_takes_what_the_runtime_offers_and_explicit_modes_must_exist() {
        use platform_chain::submit::CommitMode;
        use platform_chain::subtensor::CommitSupport;

        use crate::config::CommitModeName as M;
        let finney = CommitSupport {
            hash: true,
            timelocked: Some(4),
        };
        let spec218 = CommitSupport {
            hash: true,
            timelocked: None,
        };
        let tl = CommitMode::Timelocked {
            block_seconds: 12,
            version: 4,
        };
        assert_eq!(super::commit_mode_for(M::Auto, finney, 12).unwrap(), tl);
        assert_eq!(
            super::commit_mode_for(M::Timelocked, finney, 12).unwrap(),
            tl
        );
        assert_eq!(
            super::commit_mode_for(M::Hash, finney, 12).unwrap(),
            CommitMode::Hash
        );
        assert_eq!(
            super::commit_mode_for(M::Auto, spec218, 12).unwrap(),
            CommitMode::Hash
        );
        let e = super::commit_mode_for(M::Timelocked, spec218, 12)
            .unwrap_err()
            .to_string();
        assert!(e.contains("commit_timelocked_weights"), "{e}");
        let none = CommitSupport {
            hash: false,
            timelocked: None,
        };
        assert!(super::commit_mode_for(M::Hash, none, 12).is_err());
        assert!(super::commit_mode_for(M::Auto, none, 12).is_err());
    }

    #[test]
    fn standing_tells_the_missing_subnet_the_stranger_the_permitless_and_the_validator_apart() {
        let c = chain();
        let e = super::standing(&c, 4, &[1; 32]).unwrap_err().to_string();
        assert_eq!(
            e,
            "subnet 4 does not exist on this chain (check node.netuid)"
        );
        let s = super::standing(&c, 3, &[9; 32]).unwrap();
        assert!(s.contains("is not registered on subnet 3"), "{s}");
        let s = super::standing(&c, 3, &[2; 32]).unwrap();
        assert!(
            s.contains("registered on subnet 3 as uid 1 but has no validator permit (stake 100)"),
            "{s}"
        );
        let s = super::standing(&c, 3, &[1; 32]).unwrap();
        assert!(
            s.contains("is uid 0 on subnet 3 with a validator permit (stake 500)"),
            "{s}"
        );
    }
}
