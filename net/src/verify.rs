//! Signature verification in bulk, off the net thread: many envelopes' sr25519 signatures
//! checked with batch verification (one multi-scalar multiplication per signing scheme),
//! which costs a fraction of verifying each alone. Used for a fetched submission batch
//! (all or nothing: [`all_valid`]) and for miners' submissions at the door (each its own
//! verdict: [`each_valid`]).
//!
//! Envelopes handed here were checked structurally already (they decode); one that does not
//! parse is simply invalid.

use std::borrow::Cow;

use crate::wire::Scheme;

/// A signature to check: the author, the message it covers, the signature.
type Item<'a> = (&'a [u8; 32], &'a [u8], &'a [u8; 64]);

/// An envelope taken apart for verification: its scheme, author, signed message (framed as
/// the scheme says) and signature.
type Signed<'a> = (Scheme, &'a [u8; 32], Cow<'a, [u8]>, &'a [u8; 64]);

/// Below this many signatures a failed group is verified one by one rather than halved.
const SINGLES_BELOW: usize = 4;

/// An envelope taken apart for verification, or `None` when it does not parse.
fn signed(env: &[u8]) -> Option<Signed<'_>> {
    let scheme = Scheme::of_version(*env.first()?)?;
    let author: &[u8; 32] = env.get(2..34)?.try_into().ok()?;
    // version, topic, author, issued_at_ms, payload length: 46 bytes before the payload.
    let split = env.len().checked_sub(64)?;
    if split < 46 {
        return None;
    }
    let (signed, sig) = env.split_at(split);
    let (_, message) = scheme.message(signed);
    Some((scheme, author, message, sig.try_into().ok()?))
}

/// Whether every envelope's signature verifies (one batch verification per scheme).
pub(crate) fn all_valid(envs: &[&[u8]]) -> bool {
    let mut parsed = Vec::with_capacity(envs.len());
    for e in envs {
        let Some(s) = signed(e) else { return false };
        parsed.push(s);
    }
    [Scheme::Platform, Scheme::Substrate]
        .into_iter()
        .all(|scheme| {
            let items: Vec<_> = parsed
                .iter()
                .filter(|(s, ..)| *s == scheme)
                .map(|(_, a, m, sig)| (*a, &m[..], *sig))
                .collect();
            let (context, _) = scheme.message(&[]);
            platform_keys::verify_many(context, &items)
        })
}

/// Each envelope's verdict, in order. Verified in bulk per scheme; a group that fails is
/// halved until the forged ones are found, so one forgery among n honest signatures costs
/// about two batch verifications of the group, not n single ones.
pub(crate) fn each_valid(envs: &[&[u8]]) -> Vec<bool> {
    let mut ok = vec![false; envs.len()];
    let parsed: Vec<_> = envs.iter().map(|e| signed(e)).collect();
    for scheme in [Scheme::Platform, Scheme::Substrate] {
        let (context, _) = scheme.message(&[]);
        let group: Vec<(usize, Item<'_>)> = parsed
            .iter()
            .enumerate()
            .filter_map(|(i, p)| match p {
                Some((s, a, m, sig)) if *s == scheme => Some((i, (*a, &m[..], *sig))),
                _ => None,
            })
            .collect();
        settle(context, &group, &mut ok);
    }
    ok
}

fn settle(context: &[u8], group: &[(usize, Item<'_>)], ok: &mut [bool]) {
    if group.is_empty() {
        return;
    }
    if group.len() < SINGLES_BELOW {
        for (i, (a, m, s)) in group {
            ok[*i] = platform_keys::verify(context, a, m, s);
        }
        return;
    }
    let items: Vec<_> = group.iter().map(|(_, item)| *item).collect();
    if platform_keys::verify_many(context, &items) {
        for (i, _) in group {
            ok[*i] = true;
        }
        return;
    }
    let (left, right) = group.split_at(group.len() / 2);
    settle(context, left, ok);
    settle(context, right, ok);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Envelope, Topic};
    use platform_keys::Keypair;

    fn env(seed: u8, n: u64, scheme: Scheme) -> Vec<u8> {
        let key = Keypair::from_seed(&[seed; 32]);
        Envelope::sign_as(
            scheme,
            &key,
            Topic::Submissions,
            n,
            n.to_le_bytes().to_vec(),
        )
        .encode()
    }

    fn forge(e: &mut [u8]) {
        // Claim another key: the structure holds, the signature does not.
        e[2..34].copy_from_slice(&Keypair::from_seed(&[99; 32]).public());
    }

    #[test]
    fn each_verdict_matches_single_verification_for_any_mix_of_forgeries() {
        for forged in [
            vec![],
            vec![0],
            vec![5],
            vec![0, 1, 2, 3],
            vec![2, 7, 13, 18, 19],
        ] {
            let mut envs: Vec<Vec<u8>> = (0..20u64)
                .map(|i| {
                    let scheme = if i % 3 == 0 {
                        Scheme::Substrate
                    } else {
                        Scheme::Platform
                    };
                    env(i as u8 % 5, i, scheme)
                })
                .collect();
            for &i in &forged {
                forge(&mut envs[i]);
            }
            let refs: Vec<&[u8]> = envs.iter().map(|e| e.as_slice()).collect();
            let want: Vec<bool> = envs
                .iter()
                .map(|e| Envelope::decode(e).unwrap().verify())
                .collect();
            assert_eq!(each_valid(&refs), want, "forged {forged:?}");
            assert_eq!(all_valid(&refs), forged.is_empty(), "forged {forged:?}");
        }
    }

    #[test]
    fn what_does_not_parse_is_invalid_and_nothing_panics() {
        let good = env(1, 1, Scheme::Platform);
        let mut bad_version = good.clone();
        bad_version[0] = 0xee;
        let cases: Vec<&[u8]> = vec![&[], &[1], &good[..40], &good[..97], &bad_version, &good];
        assert_eq!(
            each_valid(&cases),
            vec![false, false, false, false, false, true]
        );
        assert!(!all_valid(&cases));
        assert!(all_valid(&[]));
        assert!(each_valid(&[]).is_empty());
    }
}
