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

/// splitmix64: the differential test's seeded draws.
struct Draw(u64);

impl Draw {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n.max(1)
    }
}

/// A random epoch input with everything the rules treat apart: outsiders, abstentions,
/// repeated reports, conflicting ones, ties in stake, miners without a uid, both weight
/// rules and two mechanisms.
fn random_input(seed: u64) -> EpochInput {
    let mut d = Draw(seed);
    let validators = (0..1 + d.below(5))
        .map(|_| Validator {
            hotkey: k(1 + d.below(6) as u8),
            stake: d.below(4) * 50,
        })
        .collect();
    let challenges = (0..1 + d.below(3))
        .map(|_| Challenge {
            id: d.below(4) as u32,
            emission_share: 1 + d.below(100) as u32,
            rule: if d.below(2) == 0 {
                WeightRule::Proportional
            } else {
                WeightRule::WinnerTakesAll
            },
            mechanism: d.below(2) as u8,
        })
        .collect();
    let miners = (0..d.below(12))
        .map(|i| (k(100 + d.below(10) as u8), i as u16))
        .collect();
    let reports = (0..d.below(80))
        .map(|_| Report {
            validator: k(1 + d.below(7) as u8),
            challenge: d.below(4) as u32,
            miner: k(100 + d.below(10) as u8),
            submission: k(200 + d.below(3) as u8),
            score: (d.below(5) != 0).then(|| d.below(4) * 250_000_000),
        })
        .collect();
    EpochInput {
        epoch: d.below(1000),
        validators,
        challenges,
        miners,
        reports,
    }
}

#[test]
fn the_flat_pass_agrees_exactly_as_the_nested_maps_did() {
    for seed in 0..2_000 {
        let input = random_input(seed);
        let (scores, mut flagged) = agree(&input);
        let (want_scores, mut want_flagged) = reference_agree(&input);
        flagged.sort();
        want_flagged.sort();
        assert_eq!(
            (scores, flagged),
            (want_scores, want_flagged),
            "seed {seed}: {input:?}"
        );
    }
}

/// The agreement as computed before it was flattened into one sorted pass (nested maps per
/// pair and validator): `agree` must match it exactly.
fn reference_agree(input: &EpochInput) -> (Scores, Vec<Flagged>) {
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
    (scores, flagged)
}
