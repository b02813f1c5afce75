//! A Yuma consensus preview: what the chain's epoch will make of a weight matrix — the
//! stake-weighted median per miner (the consensus), weights clipped to it, and each miner's
//! incentive — so an operator can see the effect of weights before they are submitted.
//!
//! This follows subtensor's `epoch` for incentive (active stake, row-normalised weights,
//! `weighted_median_col` at `kappa`, clip, stake-weighted ranks, normalise); it leaves out
//! bonds and dividends, and computes in f64 where the chain uses I32F32 fixed point, so
//! figures agree to about 1e-6, not bit for bit. It is a preview, never an input to consensus.

/// One validator's view: stake, permit, and its on-chain weight row (uid → u16 value).
#[derive(Clone, Debug, PartialEq)]
pub struct ValidatorWeights {
    /// Stake backing the validator.
    pub stake: u64,
    /// Whether it holds a validator permit (only permitted stake counts).
    pub permit: bool,
    /// Its weights as set on chain: (uid, value).
    pub weights: Vec<(u16, u16)>,
}

/// What the epoch would compute.
#[derive(Clone, Debug, PartialEq)]
pub struct Preview {
    /// Per miner uid: the consensus weight (stake-weighted median at `kappa`).
    pub consensus: Vec<f64>,
    /// Per miner uid: its share of miner incentive (sums to 1 unless all weights are 0).
    pub incentive: Vec<f64>,
    /// Per validator: the share of its (normalised) weight left after clipping.
    pub validator_trust: Vec<f64>,
}

fn normalize(v: &mut [f64]) {
    let sum: f64 = v.iter().sum();
    if sum > 0.0 {
        v.iter_mut().for_each(|x| *x /= sum);
    }
}

/// For each column, the largest value `w` among the rows such that the rows scoring at
/// least `w` hold at least `majority` of the (normalised, non-zero) stake; 0 where none.
pub fn weighted_median_col(stake: &[f64], score: &[Vec<f64>], majority: f64) -> Vec<f64> {
    let columns = score.first().map_or(0, Vec::len);
    let mut use_stake: Vec<f64> = stake.to_vec();
    normalize(&mut use_stake);
    let rows: Vec<usize> = (0..stake.len()).filter(|&i| use_stake[i] > 0.0).collect();
    (0..columns)
        .map(|c| {
            let mut vals: Vec<(f64, f64)> =
                rows.iter().map(|&r| (score[r][c], use_stake[r])).collect();
            vals.sort_by(|a, b| b.0.total_cmp(&a.0));
            let mut acc = 0.0;
            for (w, s) in vals {
                acc += s;
                // A small tolerance absorbs f64 rounding where the chain's fixed point is exact.
                if acc + 1e-12 >= majority {
                    return w;
                }
            }
            0.0
        })
        .collect()
}

/// Preview the epoch for `n` uids with consensus majority `kappa` (the subnet's `Kappa`
/// hyperparameter as a fraction: u16 / 65535, 0.5 by default).
pub fn preview(validators: &[ValidatorWeights], n: u16, kappa: f64) -> Preview {
    let n = usize::from(n);
    let mut stake: Vec<f64> = validators
        .iter()
        .map(|v| if v.permit { v.stake as f64 } else { 0.0 })
        .collect();
    normalize(&mut stake);
    let weights: Vec<Vec<f64>> = validators
        .iter()
        .map(|v| {
            let mut row = vec![0.0; n];
            for &(uid, w) in &v.weights {
                if let Some(x) = row.get_mut(usize::from(uid)) {
                    *x = f64::from(w);
                }
            }
            normalize(&mut row);
            row
        })
        .collect();
    let consensus = weighted_median_col(&stake, &weights, kappa);
    let clipped: Vec<Vec<f64>> = weights
        .iter()
        .map(|row| row.iter().zip(&consensus).map(|(w, c)| w.min(*c)).collect())
        .collect();
    let mut incentive = vec![0.0; n];
    for (row, s) in clipped.iter().zip(&stake) {
        for (inc, w) in incentive.iter_mut().zip(row) {
            *inc += s * w;
        }
    }
    normalize(&mut incentive);
    let validator_trust = clipped.iter().map(|row| row.iter().sum()).collect();
    Preview {
        consensus,
        incentive,
        validator_trust,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-9)
    }

    /// subtensor's own vectors (`test_math_weighted_median_col` in its math tests):
    /// 4 validators × 3 miners, rows = validators.
    #[test]
    fn weighted_median_matches_subtensor_vectors() {
        let w = vec![
            vec![0., 0.1, 0.],
            vec![0., 0.2, 0.4],
            vec![0., 0.3, 0.1],
            vec![0., 0.4, 0.5],
        ];
        let s = [0., 0.75, 0.25, 0.];
        assert!(close(&weighted_median_col(&s, &w, 0.24), &[0., 0.3, 0.4]));
        assert!(close(&weighted_median_col(&s, &w, 0.26), &[0., 0.2, 0.4]));
        assert!(close(&weighted_median_col(&s, &w, 0.76), &[0., 0.2, 0.1]));
        let w = vec![
            vec![0., 0.1, 0.],
            vec![0., 0.2, 0.4],
            vec![0., 0.3, 0.1],
            vec![0., 0., 0.5],
        ];
        let s = [0., 0.3, 0.2, 0.5];
        assert!(close(&weighted_median_col(&s, &w, 0.51), &[0., 0., 0.4]));
        assert!(weighted_median_col(&[0., 0.], &[vec![0., 0.], vec![0., 0.]], 0.5) == [0., 0.]);
    }

    #[test]
    fn agreeing_validators_pass_their_weights_through() {
        let v = |stake, weights: Vec<(u16, u16)>| ValidatorWeights {
            stake,
            permit: true,
            weights,
        };
        let p = preview(
            &[
                v(100, vec![(2, 65535), (3, 32768)]),
                v(300, vec![(2, 65535), (3, 32768)]),
            ],
            4,
            0.5,
        );
        let third = 32768.0 / (65535.0 + 32768.0);
        assert!(close(&p.incentive, &[0., 0., 1.0 - third, third]), "{p:?}");
        assert!(close(&p.validator_trust, &[1.0, 1.0]));
    }

    #[test]
    fn a_minority_boosting_its_own_miner_is_clipped() {
        let v = |stake, permit, weights: Vec<(u16, u16)>| ValidatorWeights {
            stake,
            permit,
            weights,
        };
        // Two honest validators (80% of stake) split weight over miners 2 and 3; a colluder
        // (20%) puts everything on miner 4, and an unpermitted one's stake does not count.
        let p = preview(
            &[
                v(400, true, vec![(2, 65535), (3, 65535)]),
                v(400, true, vec![(2, 65535), (3, 65535)]),
                v(200, true, vec![(4, 65535)]),
                v(10_000, false, vec![(4, 65535)]),
            ],
            5,
            0.5,
        );
        assert_eq!(
            p.incentive[4], 0.0,
            "the colluding weight is clipped away: {p:?}"
        );
        assert!(close(&p.incentive, &[0., 0., 0.5, 0.5, 0.]));
        assert!(close(&p.validator_trust[..3], &[1.0, 1.0, 0.0]));
    }
}
