//! Which submission counts per (epoch, challenge, miner): the one with the smallest id
//! (sha256 of the signed envelope), a rule every validator applies to the same set with the
//! same result, whatever order submissions arrived in. It is derived from the envelopes
//! kept (by (epoch, arrival)) when a restarting node asks for it; the
//! running node applies the rule in memory. (A table of counted ids, written with every
//! envelope, cost a random B-tree insert per submission under load; stores written with
//! it still hold it until retention prunes it.)

use std::collections::BTreeMap;
use std::ops::RangeBounds;

use super::envelopes::ENVELOPES;
use super::{StoreError, db};

/// A stored submission envelope, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeptSubmission {
    /// Epoch it is for.
    pub epoch: u64,
    /// Challenge it is for.
    pub challenge: u32,
    /// The miner's hotkey (the envelope's author).
    pub miner: [u8; 32],
    /// sha256 of the envelope.
    pub id: [u8; 32],
    /// The payload the challenge scores.
    pub body: Vec<u8>,
    /// The signed envelope as kept.
    pub envelope: Vec<u8>,
}

/// Decode a stored envelope kept under `id` (`None` if it is not a submission envelope).
pub(super) fn decode(id: [u8; 32], envelope: &[u8]) -> Option<KeptSubmission> {
    let env = platform_net::Envelope::decode(envelope).ok()?;
    let sub = platform_net::Submission::decode(&env.payload).ok()?;
    Some(KeptSubmission {
        epoch: sub.epoch,
        challenge: sub.challenge,
        miner: env.author,
        id,
        body: sub.body,
        envelope: envelope.to_vec(),
    })
}

/// The counted submissions among the envelopes indexed under `epochs` (by their index key:
/// (epoch, arrival)), in (epoch, challenge, miner) order.
pub(super) fn counted_in(
    tx: &redb::ReadTransaction,
    epochs: impl RangeBounds<(u64, u64)>,
) -> Result<Vec<KeptSubmission>, StoreError> {
    let envelopes = tx.open_table(ENVELOPES).map_err(db)?;
    let mut counted: BTreeMap<(u64, u32, [u8; 32]), KeptSubmission> = BTreeMap::new();
    for row in envelopes.range(epochs).map_err(db)? {
        let (_, envelope) = row.map_err(db)?;
        let id = platform_types::sha256(envelope.value());
        let Some(kept) = decode(id, envelope.value()) else {
            continue;
        };
        let key = (kept.epoch, kept.challenge, kept.miner);
        match counted.get(&key) {
            Some(c) if c.id <= id => {}
            _ => {
                counted.insert(key, kept);
            }
        }
    }
    Ok(counted.into_values().collect())
}
