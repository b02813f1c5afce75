//! Start-up: the keys a config names, the chain backend, and what the epoch machine resumes
//! from after a restart (read from the store).

use std::path::Path;

use anyhow::Context as _;
use platform_chain::submit::CommitMode;
use platform_engine::{ChallengePolicy, EvalResult};
use platform_keys::Keypair;
use platform_net::Envelope;

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
        } => {
            let signer = platform_chain::extrinsic::ChainSigner::from_seed(me.secret_seed())?;
            let client = platform_chain::subtensor::Subtensor::connect(
                &platform_chain::subtensor::SubtensorConfig {
                    url: url.clone(),
                    request_timeout: *request_timeout,
                },
                signer,
            )?;
            let mode = match commit_mode {
                CommitModeName::Timelocked => CommitMode::Timelocked {
                    block_seconds: *block_seconds,
                },
                CommitModeName::Hash => CommitMode::Hash,
            };
            (Backend::Subtensor(client), mode)
        }
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
    for (epoch, challenge, miner, id) in store.counted_from(from)? {
        let Some(env) = store.submission_body(&id)? else {
            continue;
        };
        let Some(sub) = Envelope::decode(&env)
            .ok()
            .and_then(|e| platform_net::Submission::decode(&e.payload).ok())
        else {
            continue;
        };
        let score = store
            .result(epoch, &id)?
            .map(|c| EvalResult::agreed_score(&c));
        submissions.push((
            Arrival {
                id,
                author: miner,
                challenge,
                epoch,
                body: sub.body,
                envelope: env,
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
    })
}
