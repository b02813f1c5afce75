//! The epoch result, computed by every validator from the agreed inputs alone: integer
//! arithmetic, canonical order, so every validator gets the same bytes whatever order the
//! inputs arrived in and however many cores evaluated them.
//!
//! Rules (also in `docs/epoch.md`):
//! 1. Only reports from validators of the epoch's set count. A validator that reports two
//!    different scores for one (challenge, miner) is flagged and both reports are dropped.
//!    A report without a score (the evaluation timed out or was aborted locally) abstains.
//! 2. Per (challenge, miner): each report names the submission it scored (the one its
//!    validator counted). The pair's submission is the one reported by the most stake (ties:
//!    the smaller id); reports of another submission neither count nor are flagged (their
//!    validator missed the counted one: not a fault). Over the pair's submission, the
//!    stake-weighted lower median of the reported scores — sort by (score, validator hotkey),
//!    take the first score at which the cumulative stake reaches half the reporting stake
//!    (`2 × cumulative ≥ reporting`). It counts only if those validators hold a strict
//!    majority of the set's stake (`2 × reporting > total`). Validators whose score for that
//!    submission differs from it are flagged (evaluation is deterministic: any difference is
//!    a fault); one that reports two scores, or two submissions, for a pair is flagged
//!    conflicting.
//! 3. Per challenge, miners' weights by the challenge's rule: `Proportional` (weight =
//!    agreed score) or `WinnerTakesAll` (the highest score gets 1; ties share).
//! 4. Challenges combine by emission share: each challenge's weights are scaled to
//!    `share × 10^12 / Σ weights` (floor, u128) and summed per miner uid. Miners not in the
//!    metagraph get nothing.
//! 5. Each subnet mechanism gets its own weights, combined (rule 4) from the challenges that
//!    name it; mechanism 0's are `weights`, the others' `mechanism_weights`. Where every
//!    challenge is mechanism 0's, the result and its digest are what they were before
//!    mechanisms.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

/// A hotkey's public key.
pub type Hotkey = [u8; 32];

/// Fixed-point scale of combined weights.
pub const WEIGHT_SCALE: u128 = 1_000_000_000_000;

/// A member of the epoch's validator set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validator {
    /// Its hotkey.
    pub hotkey: Hotkey,
    /// Its voting stake.
    pub stake: u64,
}

/// How a challenge turns agreed scores into weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightRule {
    /// Weight proportional to the agreed score.
    Proportional,
    /// The best agreed score takes the challenge's share (ties share it).
    WinnerTakesAll,
}

/// An active challenge of the epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// Challenge id.
    pub id: u32,
    /// Share of emission (relative to the other challenges' shares).
    pub emission_share: u32,
    /// Its weight rule.
    pub rule: WeightRule,
    /// The subnet mechanism its weights go to.
    pub mechanism: u8,
}

/// One validator's result for one miner's counted submission to one challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// Who reports.
    pub validator: Hotkey,
    /// The challenge.
    pub challenge: u32,
    /// The miner.
    pub miner: Hotkey,
    /// The submission scored (the one the validator counted for the pair).
    pub submission: [u8; 32],
    /// Fixed-point score (`SCORE_SCALE` = 1.0), or `None` to abstain.
    pub score: Option<u64>,
}

/// Everything the result depends on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EpochInput {
    /// The epoch number.
    pub epoch: u64,
    /// The validator set (from the metagraph at the pinned block).
    pub validators: Vec<Validator>,
    /// Active challenges.
    pub challenges: Vec<Challenge>,
    /// Miner hotkey → uid (from the same metagraph).
    pub miners: BTreeMap<Hotkey, u16>,
    /// Every report in the agreed input set.
    pub reports: Vec<Report>,
}

/// Why a validator was flagged.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Flag {
    /// It reported a score other than the agreed one.
    Disagrees {
        /// Its score.
        reported: u64,
        /// The agreed score.
        agreed: u64,
    },
    /// It reported two different scores for the same pair.
    Conflicting,
}

/// A flagged (validator, challenge, miner).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Flagged {
    /// The validator.
    pub validator: Hotkey,
    /// The challenge.
    pub challenge: u32,
    /// The miner.
    pub miner: Hotkey,
    /// Why.
    pub flag: Flag,
}

/// The epoch's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochResult {
    /// Agreed score per (challenge, miner).
    pub scores: BTreeMap<(u32, Hotkey), u64>,
    /// Combined weight per miner uid for mechanism 0 (uid order; zero weights omitted).
    pub weights: Vec<(u16, u64)>,
    /// The same for each other mechanism a challenge names, by mechanism (those with no
    /// weight omitted).
    pub mechanism_weights: Vec<(u8, Vec<(u16, u64)>)>,
    /// Flagged validators, sorted.
    pub flagged: Vec<Flagged>,
    /// sha256 of the canonical encoding of epoch, scores and weights: what consensus votes on.
    pub digest: [u8; 32],
}

/// Agreed scores per (challenge, miner), in key order.
type Scores = BTreeMap<(u32, Hotkey), u64>;

/// Compute the epoch result (see the module's rules).
pub fn compute(input: &EpochInput) -> EpochResult {
    let (scores, mut flagged) = agree(input);

    let mut combined: BTreeMap<u8, BTreeMap<u16, u128>> = BTreeMap::new();
    let mut challenges = input.challenges.clone();
    challenges.sort_by_key(|c| c.id);
    challenges.dedup_by_key(|c| c.id);
    for c in &challenges {
        let mut w: Vec<(u16, u128)> = scores
            .range((c.id, [0; 32])..=(c.id, [0xff; 32]))
            .filter_map(|((_, miner), s)| input.miners.get(miner).map(|uid| (*uid, u128::from(*s))))
            .collect();
        if c.rule == WeightRule::WinnerTakesAll {
            let best = w.iter().map(|x| x.1).max().unwrap_or(0);
            w = w
                .into_iter()
                .map(|(uid, s)| (uid, u128::from(s == best && best > 0)))
                .collect();
        }
        let sum: u128 = w.iter().map(|x| x.1).sum();
        if sum == 0 {
            continue;
        }
        let mechanism = combined.entry(c.mechanism).or_default();
        for (uid, x) in w {
            *mechanism.entry(uid).or_default() +=
                u128::from(c.emission_share) * WEIGHT_SCALE * x / sum;
        }
    }
    let mut per_mechanism: Vec<(u8, Vec<(u16, u64)>)> = combined
        .into_iter()
        .map(|(m, c)| {
            let w = c
                .into_iter()
                .filter(|(_, w)| *w > 0)
                .map(|(uid, w)| (uid, u64::try_from(w).unwrap_or(u64::MAX)))
                .collect();
            (m, w)
        })
        .filter(|(_, w): &(u8, Vec<(u16, u64)>)| !w.is_empty())
        .collect();
    let weights = match per_mechanism.first() {
        Some((0, _)) => per_mechanism.remove(0).1,
        _ => Vec::new(),
    };
    let mechanism_weights = per_mechanism;
    flagged.sort();

    let mut h = Sha256::new();
    h.update(b"platform/epoch-result/v1");
    h.update(input.epoch.to_le_bytes());
    h.update((scores.len() as u64).to_le_bytes());
    for ((c, m), s) in &scores {
        h.update(c.to_le_bytes());
        h.update(m);
        h.update(s.to_le_bytes());
    }
    let section = |h: &mut Sha256, weights: &[(u16, u64)]| {
        h.update((weights.len() as u64).to_le_bytes());
        for (uid, w) in weights {
            h.update(uid.to_le_bytes());
            h.update(w.to_le_bytes());
        }
    };
    section(&mut h, &weights);
    // Only where a challenge names another mechanism: otherwise the digest is unchanged.
    if !mechanism_weights.is_empty() {
        h.update(b"mechanisms");
        h.update((mechanism_weights.len() as u64).to_le_bytes());
        for (m, w) in &mechanism_weights {
            h.update([*m]);
            section(&mut h, w);
        }
    }
    EpochResult {
        scores,
        weights,
        mechanism_weights,
        flagged,
        digest: h.finalize().into(),
    }
}

/// The agreed score of every (challenge, miner) pair enough stake reported on, and the
/// validators flagged on the way (unsorted).
fn agree(input: &EpochInput) -> (Scores, Vec<Flagged>) {
    let stake: BTreeMap<Hotkey, u64> = input
        .validators
        .iter()
        .map(|v| (v.hotkey, v.stake))
        .collect();
    let total: u128 = stake.values().map(|s| u128::from(*s)).sum();
    let mut flagged = Vec::new();

    // Every counting report as (challenge, miner, validator, submission, score), sorted
    // and without repeats: each pair's reports lie together, by validator. The reports come
    // as one sorted run per validator's batch, which the (stable, run-merging) sort uses.
    // Rows borrow the reports' keys (40 bytes a row, not 112): references order and compare
    // as the values they point to, so the sort, the repeats and the result are the same.
    let mut rows: Vec<(u32, &Hotkey, &Hotkey, &[u8; 32], u64)> =
        Vec::with_capacity(input.reports.len());
    rows.extend(input.reports.iter().filter_map(|r| {
        let score = r.score?;
        stake.contains_key(&r.validator).then_some((
            r.challenge,
            &r.miner,
            &r.validator,
            &r.submission,
            score,
        ))
    }));
    rows.sort();
    rows.dedup();

    // Agreed scores come in key order: gathered in a vector, the map is built in bulk.
    let mut scores: Vec<((u32, Hotkey), u64)> = Vec::new();
    let mut reported: Vec<([u8; 32], u64, Hotkey, u64)> = Vec::new();
    let mut behind: Vec<([u8; 32], u128)> = Vec::new();
    for pair in rows.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)) {
        let (challenge, miner) = (pair[0].0, *pair[0].1);
        reported.clear();
        for by in pair.chunk_by(|a, b| a.2 == b.2) {
            let validator = *by[0].2;
            // More than one distinct (submission, score) from one validator.
            if by.len() > 1 {
                flagged.push(Flagged {
                    validator,
                    challenge,
                    miner,
                    flag: Flag::Conflicting,
                });
                continue;
            }
            reported.push((*by[0].3, by[0].4, validator, stake[&validator]));
        }
        // The pair's submission: the most stake behind it, then the smaller id.
        behind.clear();
        for (sub, _, _, st) in &reported {
            match behind.iter_mut().find(|(s, _)| s == sub) {
                Some((_, total)) => *total += u128::from(*st),
                None => behind.push((*sub, u128::from(*st))),
            }
        }
        let Some(counted) = behind
            .iter()
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
            .map(|(sub, _)| *sub)
        else {
            continue;
        };
        let mut votes: Vec<(u64, Hotkey, u64)> = reported
            .iter()
            .copied()
            .filter(|r| r.0 == counted)
            .map(|(_, score, validator, st)| (score, validator, st))
            .collect();
        let reporting: u128 = votes.iter().map(|v| u128::from(v.2)).sum();
        if reporting * 2 <= total || reporting == 0 {
            continue;
        }
        votes.sort_unstable();
        let mut cum = 0u128;
        let agreed = votes
            .iter()
            .find(|(_, _, s)| {
                cum += u128::from(*s);
                cum * 2 >= reporting
            })
            .map(|v| v.0)
            .expect("reporting > 0: the cumulative stake reaches half");
        for (score, validator, _) in &votes {
            if *score != agreed {
                flagged.push(Flagged {
                    validator: *validator,
                    challenge,
                    miner,
                    flag: Flag::Disagrees {
                        reported: *score,
                        agreed,
                    },
                });
            }
        }
        scores.push(((challenge, miner), agreed));
    }
    (scores.into_iter().collect(), flagged)
}

#[cfg(test)]
#[path = "epoch_tests.rs"]
mod tests;
