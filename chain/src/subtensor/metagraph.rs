//! Reading a subnet's metagraph: in one runtime-API call where the runtime offers it
//! (`SubnetInfoRuntimeApi::get_metagraph`), else from storage (2 + 2N reads, in batches).
//!
//! The two give different stakes: the runtime API's `alpha_stake` is the chain's stake weight
//! (the hotkey's alpha plus what parents lend it, less what it lends its children: what Yuma
//! weighs validators by), storage's `TotalHotkeyAlpha` the alpha staked on the hotkey. The
//! metagraph says which it holds ([`StakeKind`]); the node's roster digest names it, so
//! validators reading different kinds disagree openly instead of weighing votes differently.

use subxt::dynamic::{self, At as _, Value as DynValue};
use subxt::ext::scale_value;

use super::{At, Subtensor};
use crate::{BlockInfo, ChainError, Metagraph, Neuron, PalletError, StakeKind};

/// The runtime API trait and method read.
pub const METAGRAPH_API: (&str, &str) = ("SubnetInfoRuntimeApi", "get_metagraph");

/// Where the metagraph is read from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetagraphSource {
    /// The runtime API where the runtime at the block read has it, storage otherwise (the
    /// runtime is on chain, so every validator makes the same choice for a block).
    #[default]
    Auto,
    /// Only the runtime API (refused, naming it, on a runtime without it).
    RuntimeApi,
    /// Only storage reads (stakes are `TotalHotkeyAlpha`, as before the runtime API).
    Storage,
}

impl MetagraphSource {
    /// The configuration word.
    pub fn as_str(self) -> &'static str {
        match self {
            MetagraphSource::Auto => "auto",
            MetagraphSource::RuntimeApi => "runtime_api",
            MetagraphSource::Storage => "storage",
        }
    }
}

/// Whether `metadata`'s runtime offers [`METAGRAPH_API`].
pub fn has_metagraph_api(metadata: &subxt::Metadata) -> bool {
    metadata
        .runtime_api_trait_by_name(METAGRAPH_API.0)
        .and_then(|t| t.method_by_name(METAGRAPH_API.1))
        .is_some()
}

/// Decode a `get_metagraph` answer (`Option<Metagraph<AccountId>>`, typed by `metadata`'s
/// runtime-API section) read at `block`: `None` where the subnet does not exist. Fields are
/// found by name, so fields added or reordered by a runtime upgrade do not matter; a missing
/// or mistyped one is `Malformed`, naming it.
pub fn metagraph_from_response(
    metadata: &subxt::Metadata,
    netuid: u16,
    block: BlockInfo,
    bytes: &[u8],
) -> Result<Option<Metagraph>, ChainError> {
    let bad = |what: &str| {
        ChainError::Malformed(format!("{}::{}: {what}", METAGRAPH_API.0, METAGRAPH_API.1))
    };
    let ty = metadata
        .runtime_api_trait_by_name(METAGRAPH_API.0)
        .and_then(|t| t.method_by_name(METAGRAPH_API.1))
        .map(|m| m.output_ty())
        .ok_or_else(|| {
            ChainError::Metadata(format!(
                "the runtime has no {}::{}",
                METAGRAPH_API.0, METAGRAPH_API.1
            ))
        })?;
    let cursor = &mut &bytes[..];
    let value = scale_value::scale::decode_as_type(cursor, ty, metadata.types())
        .map_err(|e| bad(&e.to_string()))?;
    if !cursor.is_empty() {
        return Err(bad(&format!("{} bytes left over", cursor.len())));
    }
    let scale_value::ValueDef::Variant(v) = &value.value else {
        return Err(bad("not an Option"));
    };
    let mg = match v.name.as_str() {
        "None" => return Ok(None),
        "Some" => v.values.values().next().ok_or_else(|| bad("empty Some"))?,
        other => return Err(bad(&format!("unexpected variant {other}"))),
    };
    let field = |name: &str| {
        mg.at(name)
            .ok_or_else(|| bad(&format!("no field `{name}`")))
    };
    let list = |name: &str| -> Result<Vec<&scale_value::Value<u32>>, ChainError> {
        match &field(name)?.value {
            scale_value::ValueDef::Composite(c) => Ok(c.values().collect()),
            _ => Err(bad(&format!("`{name}` is not a sequence"))),
        }
    };
    let got = unwrap_number(field("netuid")?).ok_or_else(|| bad("`netuid` not a number"))?;
    if got != u128::from(netuid) {
        return Err(bad(&format!("answer for subnet {got}, asked {netuid}")));
    }
    let hotkeys = list("hotkeys")?
        .into_iter()
        .map(|h| bytes32(h).ok_or_else(|| bad("a hotkey is not 32 bytes")))
        .collect::<Result<Vec<_>, _>>()?;
    let permits = list("validator_permit")?
        .into_iter()
        .map(|p| p.as_bool().ok_or_else(|| bad("a permit is not a bool")))
        .collect::<Result<Vec<_>, _>>()?;
    let stakes = list("alpha_stake")?
        .into_iter()
        .map(|s| {
            unwrap_number(s)
                .and_then(|n| u64::try_from(n).ok())
                .ok_or_else(|| bad("a stake is not a u64"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if permits.len() != hotkeys.len() || stakes.len() != hotkeys.len() {
        return Err(bad(&format!(
            "{} hotkeys, {} permits, {} stakes",
            hotkeys.len(),
            permits.len(),
            stakes.len()
        )));
    }
    let n = u16::try_from(hotkeys.len()).map_err(|_| bad("more than 65535 neurons"))?;
    let neurons = (0..n)
        .zip(hotkeys)
        .zip(permits.into_iter().zip(stakes))
        .map(|((uid, hotkey), (validator_permit, stake))| Neuron {
            uid,
            hotkey,
            stake,
            validator_permit,
        })
        .collect();
    Ok(Some(Metagraph {
        netuid,
        block,
        neurons,
        stake_kind: StakeKind::StakeWeight,
    }))
}

/// A number, through any single-field wrappers (`Compact<AlphaBalance>` and the like).
fn unwrap_number(v: &scale_value::Value<u32>) -> Option<u128> {
    match &v.value {
        scale_value::ValueDef::Primitive(p) => p.as_u128(),
        scale_value::ValueDef::Composite(c) if c.len() == 1 => unwrap_number(c.values().next()?),
        _ => None,
    }
}

/// 32 bytes, through any wrappers (`AccountId32([u8; 32])`).
fn bytes32(v: &scale_value::Value<u32>) -> Option<[u8; 32]> {
    let scale_value::ValueDef::Composite(c) = &v.value else {
        return None;
    };
    if c.len() == 1 {
        return bytes32(c.values().next()?);
    }
    let bytes: Vec<u8> = c
        .values()
        .map(|b| b.as_u128().and_then(|n| u8::try_from(n).ok()))
        .collect::<Option<_>>()?;
    bytes.try_into().ok()
}

impl Subtensor {
    /// How metagraphs are read now: the runtime API, or storage (with the configured source
    /// and the runtime at the current block), for the start-up log; `Metadata` where
    /// `runtime_api` is configured and the runtime lacks it.
    pub fn metagraph_reads(&self) -> Result<&'static str, ChainError> {
        let at = self.block_on(self.client.at_current_block())?;
        let api = has_metagraph_api(at.metadata_ref());
        Ok(match self.metagraph_source {
            MetagraphSource::Storage => "storage reads (stakes: TotalHotkeyAlpha)",
            _ if api => "one SubnetInfoRuntimeApi::get_metagraph call (stakes: stake weights)",
            MetagraphSource::RuntimeApi => {
                return Err(ChainError::Metadata(format!(
                    "metagraph = \"runtime_api\", but the runtime has no {}::{}",
                    METAGRAPH_API.0, METAGRAPH_API.1
                )));
            }
            MetagraphSource::Auto => {
                "storage reads: the runtime has no SubnetInfoRuntimeApi (stakes: TotalHotkeyAlpha)"
            }
        })
    }

    /// The metagraph as of the block `at`, from the configured source.
    pub(super) fn metagraph_on(&self, at: &At, netuid: u16) -> Result<Metagraph, ChainError> {
        let api = has_metagraph_api(at.metadata_ref());
        match self.metagraph_source {
            MetagraphSource::RuntimeApi if !api => Err(ChainError::Metadata(format!(
                "the runtime at block {} has no {}::{} (metagraph = \"runtime_api\"); \
                 metagraph = \"auto\" or \"storage\" reads it from storage",
                at.block_number(),
                METAGRAPH_API.0,
                METAGRAPH_API.1
            ))),
            MetagraphSource::Auto | MetagraphSource::RuntimeApi if api => {
                self.metagraph_by_api(at, netuid)
            }
            _ => self.metagraph_by_storage(at, netuid),
        }
    }

    /// One runtime-API call.
    fn metagraph_by_api(&self, at: &At, netuid: u16) -> Result<Metagraph, ChainError> {
        let payload =
            dynamic::runtime_api_call::<_, DynValue>(METAGRAPH_API.0, METAGRAPH_API.1, (netuid,));
        let apis = at.runtime_apis();
        let name = apis.encode_name(&payload);
        let args = apis
            .encode_args(&payload)
            .map_err(|e| ChainError::Encode(format!("{name}: {e}")))?;
        let bytes = self.block_on(apis.call_raw(&name, Some(&args)))?;
        let block = BlockInfo {
            number: at.block_number(),
            hash: at.block_hash().0,
        };
        metagraph_from_response(at.metadata_ref(), netuid, block, &bytes)?
            .ok_or_else(|| PalletError::SubnetNotExists.into())
    }

    /// 2 + 2N storage reads, in two batches of concurrent requests.
    fn metagraph_by_storage(&self, at: &At, netuid: u16) -> Result<Metagraph, ChainError> {
        self.subnet_exists(at, netuid)?;
        let n: u16 = self.read(at, "SubnetworkN", (netuid,))?;
        let permits: Vec<bool> = self.read(at, "ValidatorPermit", (netuid,))?;
        // Every uid's hotkey, then every hotkey's stake: two batches of requests in flight
        // together, not 2N round trips one after another.
        let hotkeys: Vec<[u8; 32]> =
            self.read_many(at, "Keys", (0..n).map(|uid| (netuid, uid)).collect())?;
        let stakes: Vec<u64> = self.read_many(
            at,
            "TotalHotkeyAlpha",
            hotkeys.iter().map(|h| (*h, netuid)).collect(),
        )?;
        let neurons = hotkeys
            .into_iter()
            .zip(stakes)
            .zip(0..n)
            .map(|((hotkey, stake), uid)| Neuron {
                uid,
                hotkey,
                stake,
                validator_permit: permits.get(usize::from(uid)).copied().unwrap_or(false),
            })
            .collect();
        Ok(Metagraph {
            netuid,
            block: BlockInfo {
                number: at.block_number(),
                hash: at.block_hash().0,
            },
            neurons,
            stake_kind: StakeKind::HotkeyAlpha,
        })
    }
}
