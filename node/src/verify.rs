//! `platform verify`: re-execute committed evaluations from what a (stopped) node stored —
//! the module, the submission, and the seed of the committed epoch's pinned block — and
//! compare the result with the stored canonical record and the audit log. A receipt anyone
//! holding the data can check.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use platform_consensus::store::{RedbStore, Storage as _};
use platform_engine::{
    Baseline, Challenge, ChallengeId, ChallengeSpec, EvalContext, Runtime, Submission,
};

use crate::config::NodeConfig;
use crate::machine::epoch_seed;
use crate::msg::EpochValue;
use crate::store::{AuditRecord, Store};

/// `platform verify`.
#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// The node's config file (its data_dir, netuid, engine settings).
    #[arg(long)]
    pub config: PathBuf,
    /// The committed epoch whose evaluations to re-execute.
    #[arg(long)]
    pub epoch: u64,
    /// Only this submission (its id, hex).
    #[arg(long)]
    pub submission: Option<String>,
}

/// What re-executing one evaluation showed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The same canonical result, and the audit record agrees.
    Match,
    /// The stored result differs from the re-executed one.
    ResultDiffers,
    /// The result matches but the audit record does not (edited after the fact).
    AuditDiffers,
    /// It cannot be re-executed here (why).
    Unverifiable(String),
}

/// Re-execute `epoch`'s stored evaluations (or one submission's); (id, verdict) each.
pub fn verify(args: &VerifyArgs) -> anyhow::Result<Vec<([u8; 32], Verdict)>> {
    // (The config error names the file and the cause.)
    let cfg = NodeConfig::load(&args.config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let base = args.config.parent().unwrap_or(Path::new("."));
    let data_dir = if cfg.node.data_dir.is_absolute() {
        cfg.node.data_dir.clone()
    } else {
        base.join(&cfg.node.data_dir)
    };
    for f in ["node.redb", "consensus.redb"] {
        anyhow::ensure!(
            data_dir.join(f).is_file(),
            "{} not found: is {} this node's config?",
            data_dir.join(f).display(),
            args.config.display()
        );
    }
    let store = crate::boot::open_store(&data_dir.join("node.redb"), Store::open)
        .context("a running node holds its stores: stop it, or verify a copy")?;
    let cstore = crate::boot::open_store(&data_dir.join("consensus.redb"), RedbStore::open)?;
    let genesis = cfg.consensus.genesis_epoch.unwrap_or(0);
    let height = (args.epoch + 1)
        .checked_sub(genesis)
        .with_context(|| format!("epoch {} is before the genesis epoch {genesis}", args.epoch))?;
    let value = cstore
        .decisions(height, 1)?
        .into_iter()
        .find(|d| d.height == height)
        .and_then(|d| EpochValue::decode_checked(&d.value))
        .filter(|v| v.epoch == args.epoch)
        .with_context(|| format!("epoch {} is not committed in this node's store", args.epoch))?;
    let seed = epoch_seed(cfg.node.netuid, args.epoch, &value.pin);
    let pruned_below = store.pruned_below()?;
    anyhow::ensure!(
        args.epoch >= pruned_below,
        "epoch {} is committed, but this node no longer keeps its submissions and audit \
         records: epochs below {pruned_below} were pruned (node.retain_epochs = {}; 0 keeps \
         everything)",
        args.epoch,
        cfg.node.retain_epochs
    );

    let wanted = match &args.submission {
        Some(h) => Some(
            <[u8; 32]>::try_from(
                hex::decode(h)
                    .context("--submission is not hex")?
                    .as_slice(),
            )
            .map_err(|_| anyhow::anyhow!("--submission must be 32 bytes of hex"))?,
        ),
        None => None,
    };
    let mut audits: Vec<AuditRecord> = Vec::new();
    store.audit_each(0, |_, r| {
        if r.epoch == args.epoch && wanted.is_none_or(|w| w == r.submission) {
            audits.push(r.clone());
        }
        Ok(())
    })?;
    anyhow::ensure!(
        !audits.is_empty(),
        "no evaluation of epoch {} in this node's audit log",
        args.epoch
    );

    let mut engine_cfg = cfg.engine.clone();
    engine_cfg.artifact_cache_dir = None;
    let mut engines = Engines {
        runtime: Runtime::new(&engine_cfg)?,
        baseline: Baseline::new(&engine_cfg)?,
        registry: crate::registry::Registry::restore([0; 32], &store.registry()?, 0)
            .map_err(|e| anyhow::anyhow!("stored registry: {e}"))?,
        loaded: HashMap::new(),
    };
    let mut out = Vec::new();
    for audit in audits {
        let verdict = match reexecute(&store, &mut engines, &audit, seed) {
            Ok(v) => v,
            Err(e) => Verdict::Unverifiable(format!("{e:#}")),
        };
        out.push((audit.submission, verdict));
    }
    Ok(out)
}

/// What re-execution runs on: the registry as stored, and each challenge compiled once.
struct Engines {
    runtime: Runtime,
    baseline: Baseline,
    registry: crate::registry::Registry,
    /// By (challenge, module hash): the compiled challenge, or why it cannot be.
    loaded: HashMap<(u32, [u8; 32]), Result<Arc<Challenge>, String>>,
}

impl Engines {
    /// The challenge `audit` ran, compiled for the baseline engine (once per module).
    fn challenge(&mut self, store: &Store, audit: &AuditRecord) -> anyhow::Result<Arc<Challenge>> {
        let key = (audit.challenge, audit.module_hash);
        if !self.loaded.contains_key(&key) {
            let loaded = self.load(store, audit).map_err(|e| format!("{e:#}"));
            self.loaded.insert(key, loaded);
        }
        self.loaded[&key].clone().map_err(anyhow::Error::msg)
    }

    fn load(&mut self, store: &Store, audit: &AuditRecord) -> anyhow::Result<Arc<Challenge>> {
        let module = store
            .module(&audit.module_hash)?
            .context("the module that ran is not stored")?;
        let meta = self
            .registry
            .entries()
            .get(&audit.challenge)
            .map(|e| e.meta.clone())
            .context("the challenge is not in the registry")?;
        anyhow::ensure!(
            meta.module_hash == audit.module_hash,
            "the challenge has been updated since (its limits then are not kept)"
        );
        let challenge = self
            .runtime
            .register(ChallengeSpec {
                id: ChallengeId(meta.id),
                name: meta.name.clone(),
                wasm: module.clone(),
                policy: crate::boot::policy_of(&meta),
                data: Vec::new(),
            })
            .map_err(|e| anyhow::anyhow!("registering the module: {e}"))?;
        self.baseline
            .add(&challenge, &module)
            .map_err(|e| anyhow::anyhow!("compiling the module: {e}"))?;
        Ok(challenge)
    }
}

fn reexecute(
    store: &Store,
    engines: &mut Engines,
    audit: &AuditRecord,
    seed: [u8; 32],
) -> anyhow::Result<Verdict> {
    let id = audit.submission;
    let stored = store
        .result(audit.epoch, &id)?
        .context("no stored result for this audit record")?;
    let envelope = store
        .submission_body(&id)?
        .context("the submission itself is not stored")?;
    let body = envelope_body(&envelope)?;
    let input_hash = platform_types::sha256(&body);
    let challenge = engines.challenge(store, audit)?;
    let report = engines
        .baseline
        .evaluate(&Submission {
            id,
            challenge,
            payload: body.into(),
            context: EvalContext {
                epoch: audit.epoch,
                seed,
            },
        })
        .context("the module did not load")?;
    let again = report.result.canonical_bytes();
    if again != stored {
        return Ok(Verdict::ResultDiffers);
    }
    let agrees = audit.outcome == again[120]
        && audit.score == report.result.score
        && audit.fuel == report.result.fuel_used
        && audit.input_hash == input_hash;
    Ok(if agrees {
        Verdict::Match
    } else {
        Verdict::AuditDiffers
    })
}

/// The submission body an envelope carries (what the audit record's input hash covers).
fn envelope_body(envelope: &[u8]) -> anyhow::Result<Vec<u8>> {
    let env = platform_net::Envelope::decode(envelope)?;
    Ok(platform_net::Submission::decode(&env.payload)?.body)
}

/// Run `platform verify`: one line per evaluation, then a summary; fails if any differs.
pub fn run(args: &VerifyArgs) -> anyhow::Result<()> {
    let verdicts = verify(args)?;
    let mut bad = 0;
    for (id, v) in &verdicts {
        let line = match v {
            Verdict::Match => "matches the committed result and the audit log".to_string(),
            Verdict::ResultDiffers => {
                bad += 1;
                "DIFFERS from the stored result".to_string()
            }
            Verdict::AuditDiffers => {
                bad += 1;
                "matches the stored result, but the audit record DIFFERS".to_string()
            }
            Verdict::Unverifiable(why) => format!("cannot be re-executed: {why}"),
        };
        println!("{} {line}", hex::encode(id));
    }
    println!(
        "epoch {}: {} evaluations re-executed, {} differ",
        args.epoch,
        verdicts.len(),
        bad
    );
    anyhow::ensure!(
        bad == 0,
        "{bad} of {} evaluations differ from what is stored",
        verdicts.len()
    );
    Ok(())
}
