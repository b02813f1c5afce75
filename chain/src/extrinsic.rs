//! SubtensorModule calls and signed extrinsics, encoded by subxt from the runtime's own
//! metadata (dynamic calls: nothing is generated from files outside the repo at build time).
//! Used online by [`crate::subtensor`] and offline by the golden-bytes tests.

use std::path::Path;
use std::sync::Arc;

use subxt::config::substrate::SpecVersionForRange;
use subxt::config::{DefaultExtrinsicParamsBuilder, SubstrateConfig};
use subxt::dynamic::Value;
use subxt::metadata::Metadata;
use subxt::utils::H256;
use subxt::{OfflineClient, ext::codec::Decode};
use subxt_signer::SecretUri;
use subxt_signer::sr25519;

use crate::ChainError;

/// A runtime's metadata (SCALE `RuntimeMetadataPrefixed`, V14 to V16).
#[derive(Clone, Debug)]
pub struct RuntimeMetadata(pub(crate) Arc<Metadata>);

impl RuntimeMetadata {
    /// Decode metadata bytes (as `state_getMetadata` or `subxt metadata` give them).
    pub fn from_scale(bytes: &[u8]) -> Result<RuntimeMetadata, ChainError> {
        Metadata::decode(&mut &bytes[..])
            .map(|m| RuntimeMetadata(Arc::new(m)))
            .map_err(|e| ChainError::Metadata(format!("undecodable metadata: {e}")))
    }

    /// subxt's view of it.
    pub fn subxt(&self) -> &Metadata {
        &self.0
    }

    /// The runtime's `spec_version` and `transaction_version`, from the `System::Version`
    /// constant in the metadata.
    pub fn runtime_version(&self) -> Result<(u32, u32), ChainError> {
        #[derive(Decode)]
        struct Version {
            _spec_name: String,
            _impl_name: String,
            _authoring_version: u32,
            spec_version: u32,
            _impl_version: u32,
            _apis: Vec<([u8; 8], u32)>,
            transaction_version: u32,
        }
        let c = self
            .0
            .pallet_by_name("System")
            .and_then(|p| p.constant_by_name("Version"))
            .ok_or_else(|| ChainError::Metadata("no System::Version constant".into()))?;
        let v = Version::decode(&mut c.value())
            .map_err(|e| ChainError::Metadata(format!("System::Version: {e}")))?;
        Ok((v.spec_version, v.transaction_version))
    }

    /// Whether `SubtensorModule` has this call.
    pub fn has_call(&self, name: &str) -> bool {
        self.0
            .pallet_by_name("SubtensorModule")
            .and_then(|p| p.call_variant_by_name(name))
            .is_some()
    }
}

/// The weight calls of `SubtensorModule`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WeightsCall {
    /// `set_weights(netuid, dests, weights, version_key)`.
    SetWeights {
        /// Subnet.
        netuid: u16,
        /// Uids.
        uids: Vec<u16>,
        /// Normalised values.
        values: Vec<u16>,
        /// Weights version key.
        version_key: u64,
    },
    /// `commit_weights(netuid, commit_hash)`.
    CommitWeights {
        /// Subnet.
        netuid: u16,
        /// The v2 commit hash.
        hash: [u8; 32],
    },
    /// `reveal_weights(netuid, uids, values, salt, version_key)`.
    RevealWeights {
        /// Subnet.
        netuid: u16,
        /// Uids.
        uids: Vec<u16>,
        /// Values.
        values: Vec<u16>,
        /// Salt used in the commit.
        salt: Vec<u16>,
        /// Weights version key.
        version_key: u64,
    },
    /// `commit_timelocked_weights(netuid, commit, reveal_round, commit_reveal_version)`.
    CommitTimelocked {
        /// Subnet.
        netuid: u16,
        /// Compressed timelock ciphertext (at most 5000 bytes).
        commit: Vec<u8>,
        /// drand round at which it can be decrypted.
        reveal_round: u64,
        /// Commit-reveal version (4 today).
        commit_reveal_version: u16,
    },
    /// `set_mechanism_weights(netuid, mecid, dests, weights, version_key)`.
    SetMechanismWeights {
        /// Subnet.
        netuid: u16,
        /// Mechanism.
        mecid: u8,
        /// Uids.
        uids: Vec<u16>,
        /// Normalised values.
        values: Vec<u16>,
        /// Weights version key.
        version_key: u64,
    },
    /// `commit_mechanism_weights(netuid, mecid, commit_hash)`.
    CommitMechanismWeights {
        /// Subnet.
        netuid: u16,
        /// Mechanism.
        mecid: u8,
        /// The v2 commit hash (over the mechanism's storage index).
        hash: [u8; 32],
    },
    /// `reveal_mechanism_weights(netuid, mecid, uids, values, salt, version_key)`.
    RevealMechanismWeights {
        /// Subnet.
        netuid: u16,
        /// Mechanism.
        mecid: u8,
        /// Uids.
        uids: Vec<u16>,
        /// Values.
        values: Vec<u16>,
        /// Salt used in the commit.
        salt: Vec<u16>,
        /// Weights version key.
        version_key: u64,
    },
    /// `commit_timelocked_mechanism_weights(netuid, mecid, commit, reveal_round,
    /// commit_reveal_version)`.
    CommitTimelockedMechanism {
        /// Subnet.
        netuid: u16,
        /// Mechanism.
        mecid: u8,
        /// Compressed timelock ciphertext (at most 5000 bytes).
        commit: Vec<u8>,
        /// drand round at which it can be decrypted.
        reveal_round: u64,
        /// Commit-reveal version (4 today).
        commit_reveal_version: u16,
    },
}

fn u16s(v: &[u16]) -> Value {
    Value::unnamed_composite(v.iter().map(|x| Value::u128(u128::from(*x))))
}

impl WeightsCall {
    /// The call's name in the pallet.
    pub fn name(&self) -> &'static str {
        match self {
            WeightsCall::SetWeights { .. } => "set_weights",
            WeightsCall::CommitWeights { .. } => "commit_weights",
            WeightsCall::RevealWeights { .. } => "reveal_weights",
            WeightsCall::CommitTimelocked { .. } => "commit_timelocked_weights",
            WeightsCall::SetMechanismWeights { .. } => "set_mechanism_weights",
            WeightsCall::CommitMechanismWeights { .. } => "commit_mechanism_weights",
            WeightsCall::RevealMechanismWeights { .. } => "reveal_mechanism_weights",
            WeightsCall::CommitTimelockedMechanism { .. } => "commit_timelocked_mechanism_weights",
        }
    }

    /// `(netuid, mecid)` of the call (mechanism 0 for the original calls).
    pub fn target(&self) -> (u16, u8) {
        match self {
            WeightsCall::SetWeights { netuid, .. }
            | WeightsCall::CommitWeights { netuid, .. }
            | WeightsCall::RevealWeights { netuid, .. }
            | WeightsCall::CommitTimelocked { netuid, .. } => (*netuid, 0),
            WeightsCall::SetMechanismWeights { netuid, mecid, .. }
            | WeightsCall::CommitMechanismWeights { netuid, mecid, .. }
            | WeightsCall::RevealMechanismWeights { netuid, mecid, .. }
            | WeightsCall::CommitTimelockedMechanism { netuid, mecid, .. } => (*netuid, *mecid),
        }
    }

    /// `set_weights` for mechanism 0 (as runtimes without mechanisms have it), else
    /// `set_mechanism_weights`.
    pub fn set(netuid: u16, mecid: u8, uids: Vec<u16>, values: Vec<u16>, version_key: u64) -> Self {
        match mecid {
            0 => WeightsCall::SetWeights {
                netuid,
                uids,
                values,
                version_key,
            },
            _ => WeightsCall::SetMechanismWeights {
                netuid,
                mecid,
                uids,
                values,
                version_key,
            },
        }
    }

    /// `commit_weights` for mechanism 0, else `commit_mechanism_weights`.
    pub fn commit(netuid: u16, mecid: u8, hash: [u8; 32]) -> Self {
        match mecid {
            0 => WeightsCall::CommitWeights { netuid, hash },
            _ => WeightsCall::CommitMechanismWeights {
                netuid,
                mecid,
                hash,
            },
        }
    }

    /// `reveal_weights` for mechanism 0, else `reveal_mechanism_weights`.
    pub fn reveal(
        netuid: u16,
        mecid: u8,
        uids: Vec<u16>,
        values: Vec<u16>,
        salt: Vec<u16>,
        version_key: u64,
    ) -> Self {
        match mecid {
            0 => WeightsCall::RevealWeights {
                netuid,
                uids,
                values,
                salt,
                version_key,
            },
            _ => WeightsCall::RevealMechanismWeights {
                netuid,
                mecid,
                uids,
                values,
                salt,
                version_key,
            },
        }
    }

    /// `commit_timelocked_weights` for mechanism 0, else
    /// `commit_timelocked_mechanism_weights`.
    pub fn commit_timelocked(
        netuid: u16,
        mecid: u8,
        commit: Vec<u8>,
        reveal_round: u64,
        commit_reveal_version: u16,
    ) -> Self {
        match mecid {
            0 => WeightsCall::CommitTimelocked {
                netuid,
                commit,
                reveal_round,
                commit_reveal_version,
            },
            _ => WeightsCall::CommitTimelockedMechanism {
                netuid,
                mecid,
                commit,
                reveal_round,
                commit_reveal_version,
            },
        }
    }

    /// A mechanism form (its arguments carry `mecid` after `netuid`).
    fn is_mechanism(&self) -> bool {
        !matches!(
            self,
            WeightsCall::SetWeights { .. }
                | WeightsCall::CommitWeights { .. }
                | WeightsCall::RevealWeights { .. }
                | WeightsCall::CommitTimelocked { .. }
        )
    }

    fn args(&self) -> Vec<Value> {
        let int = |x: u64| Value::u128(u128::from(x));
        let (netuid, mecid) = self.target();
        let mut args = vec![int(u64::from(netuid))];
        if self.is_mechanism() {
            args.push(int(u64::from(mecid)));
        }
        // The rest is the same in a call and its mechanism form.
        match self {
            WeightsCall::SetWeights {
                uids,
                values,
                version_key,
                ..
            }
            | WeightsCall::SetMechanismWeights {
                uids,
                values,
                version_key,
                ..
            } => args.extend([u16s(uids), u16s(values), int(*version_key)]),
            WeightsCall::CommitWeights { hash, .. }
            | WeightsCall::CommitMechanismWeights { hash, .. } => {
                args.push(Value::from_bytes(hash));
            }
            WeightsCall::RevealWeights {
                uids,
                values,
                salt,
                version_key,
                ..
            }
            | WeightsCall::RevealMechanismWeights {
                uids,
                values,
                salt,
                version_key,
                ..
            } => args.extend([u16s(uids), u16s(values), u16s(salt), int(*version_key)]),
            WeightsCall::CommitTimelocked {
                commit,
                reveal_round,
                commit_reveal_version,
                ..
            }
            | WeightsCall::CommitTimelockedMechanism {
                commit,
                reveal_round,
                commit_reveal_version,
                ..
            } => args.extend([
                Value::from_bytes(commit),
                int(*reveal_round),
                int(u64::from(*commit_reveal_version)),
            ]),
        }
        args
    }

    pub(crate) fn payload(&self) -> subxt::transactions::DynamicPayload<Vec<Value>> {
        subxt::dynamic::tx("SubtensorModule", self.name(), self.args())
    }
}

/// An sr25519 signing key for extrinsics: a validator's hotkey.
#[derive(Clone)]
pub struct ChainSigner(pub(crate) sr25519::Keypair);

impl std::fmt::Debug for ChainSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ChainSigner({})",
            platform_keys::ss58_encode(&self.public())
        )
    }
}

impl ChainSigner {
    /// From a 32-byte secret seed (a hotkey file's `secretSeed`).
    pub fn from_seed(seed: &[u8; 32]) -> Result<ChainSigner, ChainError> {
        sr25519::Keypair::from_secret_key(*seed)
            .map(ChainSigner)
            .map_err(|e| ChainError::Key(e.to_string()))
    }

    /// From a secret URI: a dev URI (`//Alice`), a mnemonic with optional derivation
    /// path, or a `0x` hex seed.
    pub fn from_uri(uri: &str) -> Result<ChainSigner, ChainError> {
        let uri: SecretUri = uri
            .parse()
            .map_err(|e| ChainError::Key(format!("secret URI: {e}")))?;
        sr25519::Keypair::from_uri(&uri)
            .map(ChainSigner)
            .map_err(|e| ChainError::Key(e.to_string()))
    }

    /// From a Bittensor hotkey file.
    pub fn from_hotkey_file(path: &Path) -> Result<ChainSigner, ChainError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ChainError::Key(format!("{}: {e}", path.display())))?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| ChainError::Key(format!("{}: {e}", path.display())))?;
        let seed = v["secretSeed"].as_str().ok_or_else(|| {
            ChainError::Key(format!(
                "{}: no secretSeed (is it encrypted?)",
                path.display()
            ))
        })?;
        // Parse and check with the same rules as every other key in the node.
        platform_keys::Keypair::from_hotkey_file(path)
            .map_err(|e| ChainError::Key(e.to_string()))?;
        let bytes = hex::decode(seed.trim_start_matches("0x"))
            .map_err(|e| ChainError::Key(format!("secretSeed: {e}")))?;
        let seed: [u8; 32] = bytes
            .try_into()
            .map_err(|_| ChainError::Key("secretSeed is not 32 bytes".into()))?;
        ChainSigner::from_seed(&seed)
    }

    /// The public key (the hotkey's AccountId32).
    pub fn public(&self) -> [u8; 32] {
        self.0.public_key().0
    }
}

/// The chain facts a signature commits to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainParams {
    /// Genesis block hash.
    pub genesis_hash: [u8; 32],
    /// Runtime `spec_version`.
    pub spec_version: u32,
    /// Runtime `transaction_version`.
    pub transaction_version: u32,
}

/// A signed extrinsic and what its signature covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedExtrinsic {
    /// The extrinsic, ready for `author_submitExtrinsic`.
    pub bytes: Vec<u8>,
    /// The signer payload (hashed with blake2-256 by the signer when over 256 bytes).
    pub signer_payload: Vec<u8>,
}

fn offline_client(md: &RuntimeMetadata, params: ChainParams) -> OfflineClient<SubstrateConfig> {
    let config = SubstrateConfig::builder()
        .set_genesis_hash(H256(params.genesis_hash))
        .set_spec_version_for_block_ranges([SpecVersionForRange {
            block_range: 0..u64::MAX,
            spec_version: params.spec_version,
            transaction_version: params.transaction_version,
        }])
        .set_metadata_for_spec_versions([(params.spec_version, md.0.clone())])
        .build();
    OfflineClient::new_with_config(config)
}

fn tx_err(e: impl std::fmt::Display) -> ChainError {
    ChainError::Encode(e.to_string())
}

/// The SCALE call data (`pallet index | call index | args`) of a weight call, checked
/// against the metadata's types.
pub fn call_data(md: &RuntimeMetadata, call: &WeightsCall) -> Result<Vec<u8>, ChainError> {
    let params = ChainParams {
        genesis_hash: [0; 32],
        spec_version: 0,
        transaction_version: 0,
    };
    let client = offline_client(md, params);
    let at = client.at_block(0u64).map_err(tx_err)?;
    at.transactions().call_data(&call.payload()).map_err(tx_err)
}

/// Sign a weight call offline: immortal, tip 0, the given nonce (a v4 signed extrinsic).
pub fn sign_offline(
    md: &RuntimeMetadata,
    params: ChainParams,
    signer: &ChainSigner,
    nonce: u64,
    call: &WeightsCall,
) -> Result<SignedExtrinsic, ChainError> {
    let client = offline_client(md, params);
    let at = client.at_block(0u64).map_err(tx_err)?;
    let payload = call.payload();
    let tx_params = DefaultExtrinsicParamsBuilder::<SubstrateConfig>::new()
        .nonce(nonce)
        .build();
    let mut signable = at
        .transactions()
        .create_v4_signable_offline(&payload, tx_params)
        .map_err(tx_err)?;
    let signer_payload = signable.signer_payload().map_err(tx_err)?;
    let signed = signable.sign(&signer.0).map_err(tx_err)?;
    Ok(SignedExtrinsic {
        bytes: signed.into_encoded(),
        signer_payload,
    })
}
