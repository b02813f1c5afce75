//! Consensus messages and quorum certificates. Every message is signed over
//! [`signing_bytes`](crate::crypto::signing_bytes); verification needs only the validator
//! set and the domain, never trust in the sender.

use std::collections::BTreeSet;

use sha2::{Digest, Sha256};

use crate::crypto::{Kind, Signer, signing_bytes, value_digest, verify};
use crate::quorum::is_quorum;
use crate::types::{Domain, Hash32, Height, PublicKey, Signature, ValidatorSet, View};

/// A signed prepare or commit vote for a value digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vote {
    /// `Prepare` or `Commit`.
    pub kind: Kind,
    /// Height voted on.
    pub height: Height,
    /// View voted in.
    pub view: View,
    /// Digest of the value.
    pub digest: Hash32,
    /// Voter.
    pub signer: PublicKey,
    /// Signature over the signing bytes.
    pub signature: Signature,
}

impl Vote {
    /// Sign a vote.
    pub fn sign(
        signer: &Signer,
        domain: Domain,
        kind: Kind,
        height: Height,
        view: View,
        digest: Hash32,
    ) -> Vote {
        let signature = signer.sign(&signing_bytes(domain, kind, height, view, &digest));
        Vote {
            kind,
            height,
            view,
            digest,
            signer: signer.public(),
            signature,
        }
    }

    /// Check the signature.
    pub fn verify(&self, domain: Domain) -> bool {
        verify(
            &self.signer,
            &signing_bytes(domain, self.kind, self.height, self.view, &self.digest),
            &self.signature,
        )
    }
}

/// A quorum certificate: votes of one kind for one `(height, view, digest)` from signers
/// holding strictly more than 2/3 of the power.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Certificate {
    /// `Prepare` or `Commit`.
    pub kind: Kind,
    /// Height.
    pub height: Height,
    /// View.
    pub view: View,
    /// Value digest.
    pub digest: Hash32,
    /// (signer, signature), each signer once.
    pub signatures: Vec<(PublicKey, Signature)>,
}

/// Why a certificate or message does not verify.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Invalid {
    /// A signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// A signer is not in the validator set.
    #[error("signer not in the validator set")]
    UnknownSigner,
    /// A signer appears twice.
    #[error("duplicate signer")]
    DuplicateSigner,
    /// The signers hold too little power.
    #[error("no quorum")]
    NoQuorum,
    /// Height, view, kind or value do not match what they must.
    #[error("inconsistent: {0}")]
    Inconsistent(&'static str),
}

impl Certificate {
    /// Verify every signature, signer membership and uniqueness, and the quorum.
    pub fn verify(&self, domain: Domain, set: &ValidatorSet) -> Result<(), Invalid> {
        let msg = signing_bytes(domain, self.kind, self.height, self.view, &self.digest);
        let mut seen = BTreeSet::new();
        let mut power = 0u128;
        for (key, sig) in &self.signatures {
            let i = set.index_of(key).ok_or(Invalid::UnknownSigner)?;
            if !seen.insert(i) {
                return Err(Invalid::DuplicateSigner);
            }
            if !verify(key, &msg, sig) {
                return Err(Invalid::BadSignature);
            }
            power += u128::from(set.power(i));
        }
        if !is_quorum(power, set.total_power()) {
            return Err(Invalid::NoQuorum);
        }
        Ok(())
    }
}

/// Proof that a value was prepared in a view: the value and its prepare certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prepared {
    /// The prepared value.
    pub value: Vec<u8>,
    /// Prepare certificate for `value_digest(value)`.
    pub certificate: Certificate,
}

impl Prepared {
    fn summary(&self) -> Hash32 {
        let mut h = Sha256::new();
        h.update(b"platform/prepared/v1");
        h.update(self.certificate.view.to_le_bytes());
        h.update(self.certificate.digest);
        h.finalize().into()
    }

    /// Verify the certificate and that it certifies this value at this height.
    pub fn verify(
        &self,
        domain: Domain,
        set: &ValidatorSet,
        height: Height,
    ) -> Result<(), Invalid> {
        if self.certificate.kind != Kind::Prepare || self.certificate.height != height {
            return Err(Invalid::Inconsistent("prepared certificate kind or height"));
        }
        if value_digest(&self.value) != self.certificate.digest {
            return Err(Invalid::Inconsistent(
                "prepared value does not match its certificate",
            ));
        }
        self.certificate.verify(domain, set)
    }
}

/// A signed request to move to `view`, carrying the sender's highest prepared value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ViewChange {
    /// Height.
    pub height: Height,
    /// The view to move to.
    pub view: View,
    /// Highest prepared certificate the sender holds at this height.
    pub prepared: Option<Prepared>,
    /// Sender.
    pub signer: PublicKey,
    /// Signature over (ViewChange, height, view, summary of `prepared`).
    pub signature: Signature,
}

impl ViewChange {
    fn digest(prepared: &Option<Prepared>) -> Hash32 {
        prepared.as_ref().map_or([0; 32], Prepared::summary)
    }

    /// Sign a view change.
    pub fn sign(
        signer: &Signer,
        domain: Domain,
        height: Height,
        view: View,
        prepared: Option<Prepared>,
    ) -> ViewChange {
        let digest = Self::digest(&prepared);
        let signature = signer.sign(&signing_bytes(
            domain,
            Kind::ViewChange,
            height,
            view,
            &digest,
        ));
        ViewChange {
            height,
            view,
            prepared,
            signer: signer.public(),
            signature,
        }
    }

    /// Check the signature and the carried certificate (which must be from an earlier view).
    pub fn verify(&self, domain: Domain, set: &ValidatorSet) -> Result<(), Invalid> {
        set.index_of(&self.signer).ok_or(Invalid::UnknownSigner)?;
        let digest = Self::digest(&self.prepared);
        if !verify(
            &self.signer,
            &signing_bytes(domain, Kind::ViewChange, self.height, self.view, &digest),
            &self.signature,
        ) {
            return Err(Invalid::BadSignature);
        }
        if let Some(p) = &self.prepared {
            if p.certificate.view >= self.view {
                return Err(Invalid::Inconsistent(
                    "prepared certificate not from an earlier view",
                ));
            }
            p.verify(domain, set, self.height)?;
        }
        Ok(())
    }
}

/// A leader's proposal. In views after the first it carries the view changes that justify
/// its value (the PBFT new-view rule).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    /// Height.
    pub height: Height,
    /// View.
    pub view: View,
    /// The proposed action, canonically encoded by the application.
    pub value: Vec<u8>,
    /// For `view > 0`: view changes to `view` from a quorum.
    pub justification: Vec<ViewChange>,
    /// The leader.
    pub signer: PublicKey,
    /// Signature over (Proposal, height, view, value digest).
    pub signature: Signature,
}

impl Proposal {
    /// Sign a proposal.
    pub fn sign(
        signer: &Signer,
        domain: Domain,
        height: Height,
        view: View,
        value: Vec<u8>,
        justification: Vec<ViewChange>,
    ) -> Proposal {
        let signature = signer.sign(&signing_bytes(
            domain,
            Kind::Proposal,
            height,
            view,
            &value_digest(&value),
        ));
        Proposal {
            height,
            view,
            value,
            justification,
            signer: signer.public(),
            signature,
        }
    }

    /// Digest of the value.
    pub fn digest(&self) -> Hash32 {
        value_digest(&self.value)
    }

    /// Check the signature (the caller checks that the signer leads this view) and, for
    /// later views, the justification: a quorum of valid view changes to this view, and the
    /// value equal to the highest prepared value among them, if any.
    pub fn verify(&self, domain: Domain, set: &ValidatorSet) -> Result<(), Invalid> {
        set.index_of(&self.signer).ok_or(Invalid::UnknownSigner)?;
        if !verify(
            &self.signer,
            &signing_bytes(
                domain,
                Kind::Proposal,
                self.height,
                self.view,
                &self.digest(),
            ),
            &self.signature,
        ) {
            return Err(Invalid::BadSignature);
        }
        if self.view == 0 {
            return if self.justification.is_empty() {
                Ok(())
            } else {
                Err(Invalid::Inconsistent("justification in view 0"))
            };
        }
        let mut seen = BTreeSet::new();
        let mut power = 0u128;
        for vc in &self.justification {
            if vc.height != self.height || vc.view != self.view {
                return Err(Invalid::Inconsistent(
                    "view change for another height or view",
                ));
            }
            // Membership and uniqueness first: cheap checks before any signature work, so a
            // justification padded with copies costs at most one verification per member.
            let i = set.index_of(&vc.signer).ok_or(Invalid::UnknownSigner)?;
            if !seen.insert(i) {
                return Err(Invalid::DuplicateSigner);
            }
            vc.verify(domain, set)?;
            power += u128::from(set.power(i));
        }
        if !is_quorum(power, set.total_power()) {
            return Err(Invalid::NoQuorum);
        }
        if let Some(p) = highest_prepared(&self.justification)
            && p.value != self.value
        {
            return Err(Invalid::Inconsistent(
                "value is not the highest prepared value",
            ));
        }
        Ok(())
    }
}

/// The prepared value from the highest view among view changes (ties: the same value, by
/// quorum intersection; the first is taken).
pub fn highest_prepared(vcs: &[ViewChange]) -> Option<&Prepared> {
    vcs.iter()
        .filter_map(|vc| vc.prepared.as_ref())
        .max_by_key(|p| p.certificate.view)
}

/// A committed decision with its proof.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Height decided.
    pub height: Height,
    /// The value.
    pub value: Vec<u8>,
    /// Commit certificate for `value_digest(value)`.
    pub certificate: Certificate,
}

impl Decision {
    /// Verify the commit certificate and that it certifies this value at this height.
    pub fn verify(&self, domain: Domain, set: &ValidatorSet) -> Result<(), Invalid> {
        if self.certificate.kind != Kind::Commit || self.certificate.height != self.height {
            return Err(Invalid::Inconsistent("decision certificate kind or height"));
        }
        if value_digest(&self.value) != self.certificate.digest {
            return Err(Invalid::Inconsistent(
                "decided value does not match its certificate",
            ));
        }
        self.certificate.verify(domain, set)
    }
}

/// Everything replicas send each other.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A leader's proposal.
    Proposal(Proposal),
    /// A prepare or commit vote.
    Vote(Vote),
    /// A view change.
    ViewChange(ViewChange),
    /// Ask for decisions from a height on (state sync; unsigned, answers are verified).
    SyncRequest {
        /// First height wanted.
        from: Height,
    },
    /// Decisions with their certificates, in height order.
    SyncResponse(Vec<Decision>),
}

impl Message {
    /// Height the message is about (0 for sync messages).
    pub fn height(&self) -> Height {
        match self {
            Message::Proposal(p) => p.height,
            Message::Vote(v) => v.height,
            Message::ViewChange(vc) => vc.height,
            Message::SyncRequest { .. } | Message::SyncResponse(_) => 0,
        }
    }

    /// What kind of message it is, for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Message::Proposal(_) => "proposal",
            Message::Vote(v) if v.kind == Kind::Prepare => "prepare",
            Message::Vote(_) => "commit",
            Message::ViewChange(_) => "view_change",
            Message::SyncRequest { .. } => "sync_request",
            Message::SyncResponse(_) => "sync_response",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Validator;

    const D: Domain = Domain {
        netuid: 1,
        epoch: 2,
    };

    fn setup(n: u8) -> (Vec<Signer>, ValidatorSet) {
        let signers: Vec<Signer> = (1..=n).map(|i| Signer::from_seed(&[i; 32])).collect();
        let set = ValidatorSet::new(
            signers
                .iter()
                .map(|s| Validator {
                    hotkey: s.public(),
                    stake: 10,
                })
                .collect(),
            None,
        )
        .unwrap();
        (signers, set)
    }

    #[test]
    fn certificates_need_distinct_known_valid_signers_with_quorum() {
        let (signers, set) = setup(4);
        let sign = |s: &Signer| {
            (
                s.public(),
                s.sign(&signing_bytes(D, Kind::Commit, 1, 0, &[5; 32])),
            )
        };
        let cert = |sigs: Vec<(PublicKey, Signature)>| Certificate {
            kind: Kind::Commit,
            height: 1,
            view: 0,
            digest: [5; 32],
            signatures: sigs,
        };
        assert_eq!(
            cert(signers[..3].iter().map(sign).collect()).verify(D, &set),
            Ok(())
        );
        assert_eq!(
            cert(signers[..2].iter().map(sign).collect()).verify(D, &set),
            Err(Invalid::NoQuorum)
        );
        let mut dup: Vec<_> = signers[..2].iter().map(sign).collect();
        dup.push(sign(&signers[0]));
        assert_eq!(cert(dup).verify(D, &set), Err(Invalid::DuplicateSigner));
        let outsider = Signer::from_seed(&[99; 32]);
        let mut unknown: Vec<_> = signers[..2].iter().map(sign).collect();
        unknown.push(sign(&outsider));
        assert_eq!(cert(unknown).verify(D, &set), Err(Invalid::UnknownSigner));
        let mut forged: Vec<_> = signers[..3].iter().map(sign).collect();
        forged[1].1.0[0] ^= 1;
        assert_eq!(cert(forged).verify(D, &set), Err(Invalid::BadSignature));
    }

    #[test]
    fn a_justification_padded_with_one_view_change_is_refused() {
        let (signers, set) = setup(4);
        let vc = ViewChange::sign(&signers[0], D, 1, 1, None);
        let padded = Proposal::sign(
            &signers[1],
            D,
            1,
            1,
            b"v".to_vec(),
            vec![vc.clone(), vc.clone(), vc],
        );
        assert_eq!(padded.verify(D, &set), Err(Invalid::DuplicateSigner));
        let quorum: Vec<ViewChange> = signers[..3]
            .iter()
            .map(|s| ViewChange::sign(s, D, 1, 1, None))
            .collect();
        let good = Proposal::sign(&signers[1], D, 1, 1, b"v".to_vec(), quorum);
        assert_eq!(good.verify(D, &set), Ok(()));
    }
}
