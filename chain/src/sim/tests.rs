//! The simulated chain against the pallet's checks.

use super::*;
use crate::weights::commit_hash;

fn key(i: u8) -> [u8; 32] {
    [i; 32]
}

fn chain(commit_reveal: bool) -> SimChain {
    SimChain::new(
        [7; 32],
        vec![SubnetGenesis {
            netuid: 1,
            hyperparams: Hyperparams {
                tempo: 10,
                commit_reveal_enabled: commit_reveal,
                commit_reveal_period: 1,
                weights_version_key: 5,
                weights_rate_limit: 3,
                min_allowed_weights: 2,
                max_weight_limit: u16::MAX,
            },
            max_uids: 8,
            max_validators: 2,
            min_stake_to_set_weights: 10,
            neurons: vec![(key(1), 1000), (key(2), 500), (key(3), 100), (key(4), 5)],
        }],
    )
}

fn err(r: Result<(), ChainError>) -> PalletError {
    match r {
        Err(ChainError::Pallet(e)) => e,
        other => panic!("expected a pallet error, got {other:?}"),
    }
}

#[test]
fn permits_go_to_the_top_stakes() {
    let m = chain(false).metagraph(1).unwrap();
    let permits: Vec<bool> = m.neurons.iter().map(|n| n.validator_permit).collect();
    assert_eq!(permits, vec![true, true, false, false]);
}

#[test]
fn set_weights_enforces_the_pallet_checks() {
    let mut c = chain(false);
    c.advance(5);
    let v = key(1);
    assert_eq!(
        err(c.set_weights(&key(9), 1, &[0, 1], &[1, 1], 5)),
        PalletError::HotKeyNotRegisteredInSubNet
    );
    assert_eq!(
        err(c.set_weights(&v, 2, &[0, 1], &[1, 1], 5)),
        PalletError::SubnetNotExists
    );
    assert_eq!(
        err(c.set_weights(&v, 1, &[0, 1], &[1], 5)),
        PalletError::WeightVecNotEqualSize
    );
    assert_eq!(
        err(c.set_weights(&v, 1, &[0, 1], &[1, 1], 4)),
        PalletError::IncorrectWeightVersionKey
    );
    assert_eq!(
        err(c.set_weights(&v, 1, &[1, 1], &[1, 1], 5)),
        PalletError::DuplicateUids
    );
    assert_eq!(
        err(c.set_weights(&v, 1, &[0, 9], &[1, 1], 5)),
        PalletError::UidVecContainInvalidOne
    );
    assert_eq!(
        err(c.set_weights(&v, 1, &[1], &[1], 5)),
        PalletError::WeightVecLengthIsLow
    );
    assert_eq!(
        err(c.set_weights(&key(3), 1, &[0, 1], &[1, 1], 5)),
        PalletError::NeuronNoValidatorPermit
    );
    assert_eq!(
        err(c.set_weights(&key(4), 1, &[3], &[1], 5)),
        PalletError::NotEnoughStakeToSetWeights
    );
    c.set_weights(&v, 1, &[0, 1, 2], &[65535, 100, 1], 5)
        .unwrap();
    assert_eq!(c.weights_of(1, 0).unwrap(), &[(0, 65535), (1, 100), (2, 1)]);
    assert_eq!(
        err(c.set_weights(&v, 1, &[0, 1], &[1, 1], 5)),
        PalletError::SettingWeightsTooFast
    );
    c.advance(3);
    c.set_weights(&v, 1, &[0, 1], &[1, 1], 6).unwrap();
    // A self-weight needs no permit and no minimum length.
    c.set_weights(&key(3), 1, &[2], &[1], 5).unwrap();
}

#[test]
fn commit_reveal_flow_with_the_v2_hash() {
    let mut c = chain(true);
    let v = key(1);
    assert_eq!(
        err(c.set_weights(&v, 1, &[0, 1], &[1, 1], 5)),
        PalletError::CommitRevealEnabled
    );
    let (uids, vals, salt) = (
        [0u16, 1, 2],
        [65535u16, 32768, 1],
        [1u16, 2, 3, 4, 5, 6, 7, 8],
    );
    assert_eq!(
        err(c.reveal_weights(&v, 1, &uids, &vals, &salt, 5)),
        PalletError::NoWeightsCommitFound
    );
    c.commit_weights(&v, 1, commit_hash(&v, 1, &uids, &vals, &salt, 5))
        .unwrap();
    assert_eq!(
        err(c.reveal_weights(&v, 1, &uids, &vals, &salt, 5)),
        PalletError::RevealTooEarly
    );
    c.advance(11);
    assert_eq!(
        err(c.reveal_weights(&v, 1, &uids, &[1, 1, 1], &salt, 5)),
        PalletError::InvalidRevealCommitHashNotMatch
    );
    c.reveal_weights(&v, 1, &uids, &vals, &salt, 5).unwrap();
    assert_eq!(c.weights_of(1, 0).unwrap().len(), 3);
    // A commit within the rate limit of the reveal (an update) is refused, as the pallet
    // refuses it.
    assert_eq!(
        err(c.commit_weights(&v, 1, commit_hash(&v, 1, &uids, &vals, &salt, 6))),
        PalletError::CommittingWeightsTooFast
    );
    c.advance(3);
    // Expired: commit, then wait two epochs.
    c.commit_weights(&v, 1, commit_hash(&v, 1, &uids, &vals, &salt, 6))
        .unwrap();
    c.advance(22);
    assert_eq!(
        err(c.reveal_weights(&v, 1, &uids, &vals, &salt, 6)),
        PalletError::ExpiredWeightCommit
    );
}

#[test]
fn deterministic_from_genesis() {
    let (mut a, mut b) = (chain(false), chain(false));
    a.advance(17);
    b.advance(17);
    assert_eq!(a.current_block().unwrap(), b.current_block().unwrap());
    assert_ne!(
        a.current_block().unwrap().hash,
        chain(false).current_block().unwrap().hash
    );
}

#[test]
fn mechanisms_keep_their_own_weights_commits_and_rate_limits() {
    let mut c = chain(false);
    c.advance(5);
    let v = key(1);
    assert_eq!(c.mechanism_count(1).unwrap(), 1);
    // A mechanism the subnet lacks is refused by every call, as the pallet refuses it.
    assert_eq!(
        err(c.set_mechanism_weights(&v, 1, 1, &[0, 1], &[1, 1], 5)),
        PalletError::MechanismDoesNotExist
    );
    assert_eq!(
        c.mechanism_weights(1, 1, 0),
        Err(ChainError::Pallet(PalletError::MechanismDoesNotExist))
    );
    assert!(c.set_mechanism_count(1, 0).is_err());
    assert!(c.set_mechanism_count(1, 17).is_err());
    c.set_mechanism_count(1, 2).unwrap();
    c.set_mechanism_weights(&v, 1, 1, &[0, 1], &[7, 9], 5)
        .unwrap();
    // Mechanism 0 has its own rate limit and weights.
    c.set_weights(&v, 1, &[1, 2], &[3, 4], 5).unwrap();
    assert_eq!(
        err(c.set_mechanism_weights(&v, 1, 1, &[0, 1], &[1, 1], 5)),
        PalletError::SettingWeightsTooFast
    );
    assert_eq!(c.mechanism_weights(1, 1, 0).unwrap(), vec![(0, 7), (1, 9)]);
    assert_eq!(c.weights(1, 0).unwrap(), vec![(1, 3), (2, 4)]);
    assert_eq!(c.all_mechanism_weights(1, 1).len(), 1);
    let names: Vec<_> = c.calls().map(|r| (r.call, r.mecid)).collect();
    assert_eq!(
        names,
        vec![
            ("set_mechanism_weights", 1),
            ("set_mechanism_weights", 1),
            ("set_weights", 0),
            ("set_mechanism_weights", 1)
        ]
    );
}

#[test]
fn a_mechanism_commit_is_revealed_with_the_hash_over_its_storage_index() {
    let mut c = chain(true);
    c.set_mechanism_count(1, 3).unwrap();
    let v = key(1);
    let (uids, vals, salt) = ([0u16, 1], [65535u16, 1], [5u16; 8]);
    let index = crate::storage_index(1, 2).unwrap();
    assert_eq!(index, 2 * 4096 + 1);
    c.commit_mechanism_weights(&v, 1, 2, commit_hash(&v, index, &uids, &vals, &salt, 5))
        .unwrap();
    c.advance(11);
    // Revealed for another mechanism, or hashed over the netuid: not this commit.
    assert_eq!(
        err(c.reveal_mechanism_weights(&v, 1, 1, &uids, &vals, &salt, 5)),
        PalletError::NoWeightsCommitFound
    );
    c.reveal_mechanism_weights(&v, 1, 2, &uids, &vals, &salt, 5)
        .unwrap();
    assert_eq!(
        c.mechanism_weights(1, 2, 0).unwrap(),
        vec![(0, 65535), (1, 1)]
    );
    assert!(c.weights(1, 0).unwrap().is_empty(), "mechanism 0 untouched");
    // Fewer mechanisms: the dropped ones' state goes with them.
    c.set_mechanism_count(1, 1).unwrap();
    assert_eq!(
        err(c.reveal_mechanism_weights(&v, 1, 2, &uids, &vals, &salt, 5)),
        PalletError::MechanismDoesNotExist
    );
}
