//! Quorum arithmetic in integers: a set of signers commits when its power is strictly more
//! than two thirds of the total (`power * 3 > total * 2`), and can block or vouch when it is
//! strictly more than one third (`power * 3 > total`). u128 so stake sums cannot overflow.

/// True when `power` is a commit quorum out of `total`: strictly more than 2/3.
pub fn is_quorum(power: u128, total: u128) -> bool {
    // power ≤ total ≤ u128::MAX / 3 holds for any real stake (u64 sums); saturate anyway.
    power.saturating_mul(3) > total.saturating_mul(2)
}

/// True when `power` exceeds 1/3 of `total`: at least one honest signer is among them
/// (f + 1 under the usual bound).
pub fn exceeds_one_third(power: u128, total: u128) -> bool {
    power.saturating_mul(3) > total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_two_thirds_is_not_a_quorum() {
        assert!(!is_quorum(2, 3));
        assert!(is_quorum(3, 4));
        assert!(!is_quorum(66, 99));
        assert!(is_quorum(67, 99));
        assert!(!is_quorum(0, 0));
    }

    #[test]
    fn one_third_boundary() {
        assert!(!exceeds_one_third(1, 3));
        assert!(exceeds_one_third(2, 4));
        assert!(!exceeds_one_third(33, 99));
        assert!(exceeds_one_third(34, 99));
    }

    #[test]
    fn large_stakes_do_not_overflow() {
        let total = u128::from(u64::MAX) * 1024;
        assert!(is_quorum(total, total));
        assert!(!is_quorum(total / 2, total));
    }
}
