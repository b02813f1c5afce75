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

/// Compute the epoch result (see the module's rules).
pub fn compute(input: &EpochInput) -> EpochResult {
    let stake: BTreeMap<Hotkey, u64> = input
        .validators
        .iter()
        .map(|v| (v.hotkey, v.stake))
        .collect();
    let total: u128 = stake.values().map(|s| u128::from(*s)).sum();
    let mut flagged = Vec::new();

    // (challenge, miner) → validator → distinct (submission, score) it reported.
    type Reported = BTreeMap<Hotkey, Vec<([u8; 32], u64)>>;
    let mut by_pair: BTreeMap<(u32, Hotkey), Reported> = BTreeMap::new();
    for r in &input.reports {
        let (Some(score), true) = (r.score, stake.contains_key(&r.validator)) else {
            continue;
        };
        let v = by_pair
            .entry((r.challenge, r.miner))
            .or_default()
            .entry(r.validator)
            .or_default();
        if !v.contains(&(r.submission, score)) {
            v.push((r.submission, score));
        }
    }

    let mut scores = BTreeMap::new();
    for ((challenge, miner), reports) in by_pair {
        let mut reported: Vec<([u8; 32], u64, Hotkey, u64)> = Vec::new();
        for (validator, s) in reports {
            if s.len() > 1 {
                flagged.push(Flagged {
                    validator,
                    challenge,
                    miner,
                    flag: Flag::Conflicting,
                });
                continue;
            }
            reported.push((s[0].0, s[0].1, validator, stake[&validator]));
        }
        // The pair's submission: the most stake behind it, then the smaller id.
        let mut behind: BTreeMap<[u8; 32], u128> = BTreeMap::new();
        for (sub, _, _, st) in &reported {
            *behind.entry(*sub).or_default() += u128::from(*st);
        }
        let Some(counted) = behind
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
            .map(|(sub, _)| *sub)
        else {
            continue;
        };
        let mut votes: Vec<(u64, Hotkey, u64)> = reported
            .into_iter()
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
        scores.insert((challenge, miner), agreed);
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    fn k(i: u8) -> Hotkey {
        [i; 32]
    }

    fn input() -> EpochInput {
        EpochInput {
            epoch: 9,
            validators: vec![
                Validator {
                    hotkey: k(1),
                    stake: 100,
                },
                Validator {
                    hotkey: k(2),
                    stake: 100,
                },
                Validator {
                    hotkey: k(3),
                    stake: 100,
                },
                Validator {
                    hotkey: k(4),
                    stake: 100,
                },
            ],
            challenges: vec![
                Challenge {
                    id: 1,
                    emission_share: 3,
                    rule: WeightRule::Proportional,
                    mechanism: 0,
                },
                Challenge {
                    id: 2,
                    emission_share: 1,
                    rule: WeightRule::WinnerTakesAll,
                    mechanism: 0,
                },
            ],
            miners: [(k(50), 0u16), (k(51), 1), (k(52), 2)]
                .into_iter()
                .collect(),
            reports: Vec::new(),
        }
    }

    fn report(v: u8, c: u32, m: u8, s: u64) -> Report {
        Report {
            validator: k(v),
            challenge: c,
            miner: k(m),
            submission: [m; 32],
            score: Some(s),
        }
    }

    #[test]
    fn agreed_scores_weights_and_flags() {
        let mut i = input();
        for v in 1..=4 {
            i.reports.push(report(v, 1, 50, 600));
            i.reports.push(report(v, 1, 51, 200));
            i.reports.push(report(v, 2, 52, 900));
        }
        // Validator 4 disagrees on one pair; the stake-weighted median still holds.
        i.reports.push(report(4, 2, 50, 950));
        i.reports
            .retain(|r| !(r.validator == k(4) && r.challenge == 1 && r.miner == k(51)));
        i.reports.push(report(4, 1, 51, 999));
        let r = compute(&i);
        assert_eq!(r.scores[&(1, k(50))], 600);
        assert_eq!(r.scores[&(1, k(51))], 200);
        assert_eq!(
            r.scores.get(&(2, k(50))),
            None,
            "one validator is not a majority"
        );
        assert_eq!(
            r.flagged,
            vec![Flagged {
                validator: k(4),
                challenge: 1,
                miner: k(51),
                flag: Flag::Disagrees {
                    reported: 999,
                    agreed: 200
                }
            }]
        );
        // Challenge 1 (share 3): 600:200 → 3/4 and 1/4 of 3; challenge 2 (share 1): uid 2 wins.
        assert_eq!(
            r.weights,
            vec![
                (0, (3 * WEIGHT_SCALE * 600 / 800) as u64),
                (1, (3 * WEIGHT_SCALE * 200 / 800) as u64),
                (2, WEIGHT_SCALE as u64),
            ]
        );
    }

    /// The digest's layout before mechanisms, by hand: what a result with every challenge on
    /// mechanism 0 must still hash to.
    fn digest_v1(epoch: u64, r: &EpochResult) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"platform/epoch-result/v1");
        h.update(epoch.to_le_bytes());
        h.update((r.scores.len() as u64).to_le_bytes());
        for ((c, m), s) in &r.scores {
            h.update(c.to_le_bytes());
            h.update(m);
            h.update(s.to_le_bytes());
        }
        h.update((r.weights.len() as u64).to_le_bytes());
        for (uid, w) in &r.weights {
            h.update(uid.to_le_bytes());
            h.update(w.to_le_bytes());
        }
        h.finalize().into()
    }

    #[test]
    fn each_mechanism_combines_its_own_challenges() {
        let mut i = input();
        for v in 1..=4 {
            i.reports.push(report(v, 1, 50, 600));
            i.reports.push(report(v, 1, 51, 200));
            i.reports.push(report(v, 2, 52, 900));
        }
        let all_zero = compute(&i);
        assert!(all_zero.mechanism_weights.is_empty());
        assert_eq!(
            all_zero.digest,
            digest_v1(i.epoch, &all_zero),
            "all on mechanism 0: the digest of before"
        );
        // Challenge 2 to mechanism 1: it takes its whole share there, alone.
        i.challenges[1].mechanism = 1;
        let r = compute(&i);
        assert_eq!(r.scores, all_zero.scores);
        assert_eq!(
            r.weights,
            vec![
                (0, (3 * WEIGHT_SCALE * 600 / 800) as u64),
                (1, (3 * WEIGHT_SCALE * 200 / 800) as u64),
            ]
        );
        assert_eq!(
            r.mechanism_weights,
            vec![(1, vec![(2, WEIGHT_SCALE as u64)])]
        );
        assert_ne!(r.digest, all_zero.digest, "the split is part of the digest");
        // Every challenge elsewhere: mechanism 0 gets nothing.
        i.challenges[0].mechanism = 3;
        let r = compute(&i);
        assert!(r.weights.is_empty());
        assert_eq!(
            r.mechanism_weights.iter().map(|m| m.0).collect::<Vec<_>>(),
            vec![1, 3]
        );
    }

    #[test]
    fn a_validator_that_counted_another_submission_is_not_flagged() {
        let mut i = input();
        for v in 1..=3 {
            i.reports.push(report(v, 1, 50, 600));
        }
        // Validator 4 missed submission [50; 32] and scored the miner's other one.
        i.reports.push(Report {
            submission: [49; 32],
            ..report(4, 1, 50, 100)
        });
        let r = compute(&i);
        assert_eq!(r.scores[&(1, k(50))], 600);
        assert!(r.flagged.is_empty(), "{:?}", r.flagged);
        // The submission with the most stake behind it counts: three to one.
        i.validators[3].stake = 1000;
        let r = compute(&i);
        assert_eq!(
            r.scores.get(&(1, k(50))),
            Some(&100),
            "validator 4 alone holds a majority: its submission counts"
        );
        assert!(r.flagged.is_empty());
        // Two submissions from one validator for one pair: conflicting.
        i.reports.push(report(4, 1, 50, 100));
        let r = compute(&i);
        assert_eq!(
            r.flagged,
            vec![Flagged {
                validator: k(4),
                challenge: 1,
                miner: k(50),
                flag: Flag::Conflicting
            }]
        );
        // Equal stake behind two submissions: the smaller id counts.
        let mut j = input();
        for v in 1..=2 {
            j.reports.push(report(v, 1, 50, 600));
        }
        for v in 3..=4 {
            j.reports.push(Report {
                submission: [1; 32],
                ..report(v, 1, 50, 7)
            });
        }
        let r = compute(&j);
        assert_eq!(
            r.scores.get(&(1, k(50))),
            None,
            "half the stake is not a majority"
        );
        assert!(r.flagged.is_empty());
    }

    #[test]
    fn the_same_inputs_in_any_order_give_the_same_digest() {
        let mut i = input();
        for v in 1..=4u8 {
            for m in 50..=52u8 {
                i.reports
                    .push(report(v, 1, m, u64::from(m) * 10 + u64::from(v % 2)));
            }
        }
        let a = compute(&i);
        let mut x = 0x1234_5678u64;
        for _ in 0..20 {
            // Fisher–Yates with a fixed LCG: a different order each round.
            for j in (1..i.reports.len()).rev() {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                i.reports.swap(j, (x >> 33) as usize % (j + 1));
            }
            i.validators.reverse();
            i.challenges.reverse();
            assert_eq!(compute(&i), a);
        }
        let mut other = i.clone();
        other.epoch += 1;
        assert_ne!(
            compute(&other).digest,
            a.digest,
            "the epoch is part of the digest"
        );
    }

    #[test]
    fn outsiders_abstainers_and_equivocators() {
        let mut i = input();
        i.reports.push(report(9, 1, 50, 1)); // not a validator: ignored
        for v in 1..=3 {
            i.reports.push(report(v, 1, 50, 500));
        }
        i.reports.push(Report {
            validator: k(4),
            challenge: 1,
            miner: k(50),
            submission: [50; 32],
            score: None,
        });
        i.reports.push(report(3, 1, 51, 10));
        i.reports.push(report(3, 1, 51, 11)); // conflicting
        i.reports.push(report(1, 1, 51, 10));
        i.reports.push(report(2, 1, 51, 10));
        let r = compute(&i);
        assert_eq!(r.scores[&(1, k(50))], 500);
        // Validator 3 equivocated on (1, 51): flagged and dropped, which leaves validators 1
        // and 2 holding exactly half the stake: not a majority, no score.
        assert_eq!(r.scores.get(&(1, k(51))), None);
        assert_eq!(
            r.flagged,
            vec![Flagged {
                validator: k(3),
                challenge: 1,
                miner: k(51),
                flag: Flag::Conflicting
            }]
        );
    }

    #[test]
    fn weighted_median_uses_stake() {
        let mut i = input();
        i.validators[0].stake = 1000; // validator 1 dominates
        i.reports.push(report(1, 1, 50, 7));
        i.reports.push(report(2, 1, 50, 9));
        i.reports.push(report(3, 1, 50, 9));
        let r = compute(&i);
        assert_eq!(r.scores[&(1, k(50))], 7);
        assert_eq!(r.flagged.len(), 2);
    }
}
