//! Which submission counts per (epoch, challenge, miner): the one with the smallest id
//! (sha256 of the signed envelope), a rule every validator applies to the same set with the
//! same result, whatever order submissions arrived in. It is derived from the envelopes
//! kept, through their (epoch, arrival) index, when a restarting node asks for it; the
//! running node applies the rule in memory. (A table of counted ids, written with every
//! envelope, cost a random B-tree insert per submission under load; stores written with
//! it still hold it until retention prunes it.)

use std::collections::BTreeMap;
use std::ops::RangeBounds;

use super::retention::BODY_EPOCHS;
use super::{BODIES, EpochSubmission, StoreError, db};

/// (epoch, challenge, miner) of a stored submission envelope, `None` if it does not decode.
fn envelope_key(envelope: &[u8]) -> Option<(u64, u32, [u8; 32])> {
    let env = platform_net::Envelope::decode(envelope).ok()?;
    let sub = platform_net::Submission::decode(&env.payload).ok()?;
    Some((sub.epoch, sub.challenge, env.author))
}

/// The counted submissions among the envelopes indexed under `epochs` (by their index key:
/// (epoch, arrival)), as (epoch, challenge, miner, id) in that key order.
pub(super) fn counted_in(
    tx: &redb::ReadTransaction,
    epochs: impl RangeBounds<(u64, u64)>,
) -> Result<Vec<EpochSubmission>, StoreError> {
    let index = tx.open_table(BODY_EPOCHS).map_err(db)?;
    let bodies = tx.open_table(BODIES).map_err(db)?;
    let mut counted: BTreeMap<(u64, u32, [u8; 32]), [u8; 32]> = BTreeMap::new();
    for row in index.range(epochs).map_err(db)? {
        let (_, id) = row.map_err(db)?;
        let id = *id.value();
        let Some(envelope) = bodies.get(&id).map_err(db)? else {
            continue;
        };
        let Some(key) = envelope_key(envelope.value()) else {
            continue;
        };
        counted
            .entry(key)
            .and_modify(|c| *c = (*c).min(id))
            .or_insert(id);
    }
    Ok(counted
        .into_iter()
        .map(|((e, c, m), id)| (e, c, m, id))
        .collect())
}
