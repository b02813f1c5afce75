//! Canonical binary encoding of certificates, prepared values and decisions (for the store
//! and the wire): little endian, length-prefixed, versioned. Decoding never panics; bad
//! bytes are an error.

use crate::crypto::Kind;
use crate::message::{Certificate, Decision, Message, Prepared, Proposal, ViewChange, Vote};
use crate::types::{PublicKey, Signature};

/// Format version written first.
const VERSION: u8 = 1;
/// Largest value accepted when decoding (a decided action is small).
pub const VALUE_MAX_BYTES: usize = 1 << 20;
/// Most signatures in a certificate.
pub const SIGNATURES_MAX: usize = u16::MAX as usize;

/// Bytes that do not decode.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed consensus record: {0}")]
pub struct DecodeError(pub &'static str);

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError("truncated"));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn arr<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        Ok(self.take(N)?.try_into().expect("N bytes"))
    }
    fn done(&self) -> Result<(), DecodeError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(DecodeError("trailing bytes"))
        }
    }
}

fn kind(b: u8) -> Result<Kind, DecodeError> {
    match b {
        1 => Ok(Kind::Proposal),
        2 => Ok(Kind::Prepare),
        3 => Ok(Kind::Commit),
        4 => Ok(Kind::ViewChange),
        _ => Err(DecodeError("unknown kind")),
    }
}

fn put_certificate(out: &mut Vec<u8>, c: &Certificate) {
    out.push(c.kind as u8);
    out.extend_from_slice(&c.height.to_le_bytes());
    out.extend_from_slice(&c.view.to_le_bytes());
    out.extend_from_slice(&c.digest);
    out.extend_from_slice(&(c.signatures.len() as u32).to_le_bytes());
    for (k, s) in &c.signatures {
        out.extend_from_slice(&k.0);
        out.extend_from_slice(&s.0);
    }
}

fn get_certificate(r: &mut Reader<'_>) -> Result<Certificate, DecodeError> {
    let kind = kind(r.u8()?)?;
    let height = r.u64()?;
    let view = r.u32()?;
    let digest = r.arr::<32>()?;
    let n = r.u32()? as usize;
    if n > SIGNATURES_MAX {
        return Err(DecodeError("too many signatures"));
    }
    let mut signatures = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        signatures.push((PublicKey(r.arr::<32>()?), Signature(r.arr::<64>()?)));
    }
    Ok(Certificate {
        kind,
        height,
        view,
        digest,
        signatures,
    })
}

fn put_value(out: &mut Vec<u8>, v: &[u8]) {
    out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    out.extend_from_slice(v);
}

fn get_value(r: &mut Reader<'_>) -> Result<Vec<u8>, DecodeError> {
    let n = r.u32()? as usize;
    if n > VALUE_MAX_BYTES {
        return Err(DecodeError("value too large"));
    }
    Ok(r.take(n)?.to_vec())
}

/// Encode a prepared value.
pub fn encode_prepared(p: &Prepared) -> Vec<u8> {
    let mut out = vec![VERSION];
    put_value(&mut out, &p.value);
    put_certificate(&mut out, &p.certificate);
    out
}

/// Decode a prepared value.
pub fn decode_prepared(bytes: &[u8]) -> Result<Prepared, DecodeError> {
    let mut r = Reader(bytes);
    if r.u8()? != VERSION {
        return Err(DecodeError("unknown version"));
    }
    let value = get_value(&mut r)?;
    let certificate = get_certificate(&mut r)?;
    r.done()?;
    Ok(Prepared { value, certificate })
}

/// Encode a decision.
pub fn encode_decision(d: &Decision) -> Vec<u8> {
    let mut out = vec![VERSION];
    out.extend_from_slice(&d.height.to_le_bytes());
    put_value(&mut out, &d.value);
    put_certificate(&mut out, &d.certificate);
    out
}

/// Decode a decision.
pub fn decode_decision(bytes: &[u8]) -> Result<Decision, DecodeError> {
    let mut r = Reader(bytes);
    if r.u8()? != VERSION {
        return Err(DecodeError("unknown version"));
    }
    let height = r.u64()?;
    let value = get_value(&mut r)?;
    let certificate = get_certificate(&mut r)?;
    r.done()?;
    Ok(Decision {
        height,
        value,
        certificate,
    })
}

/// Most view changes in a proposal's justification, or decisions in a sync response.
pub const ITEMS_MAX: usize = 4096;

fn put_prepared(out: &mut Vec<u8>, p: &Prepared) {
    put_value(out, &p.value);
    put_certificate(out, &p.certificate);
}

fn get_prepared(r: &mut Reader<'_>) -> Result<Prepared, DecodeError> {
    Ok(Prepared {
        value: get_value(r)?,
        certificate: get_certificate(r)?,
    })
}

fn put_view_change(out: &mut Vec<u8>, vc: &ViewChange) {
    out.extend_from_slice(&vc.height.to_le_bytes());
    out.extend_from_slice(&vc.view.to_le_bytes());
    match &vc.prepared {
        None => out.push(0),
        Some(p) => {
            out.push(1);
            put_prepared(out, p);
        }
    }
    out.extend_from_slice(&vc.signer.0);
    out.extend_from_slice(&vc.signature.0);
}

fn get_view_change(r: &mut Reader<'_>) -> Result<ViewChange, DecodeError> {
    let height = r.u64()?;
    let view = r.u32()?;
    let prepared = match r.u8()? {
        0 => None,
        1 => Some(get_prepared(r)?),
        _ => return Err(DecodeError("bad option tag")),
    };
    Ok(ViewChange {
        height,
        view,
        prepared,
        signer: PublicKey(r.arr()?),
        signature: Signature(r.arr()?),
    })
}

fn put_decision(out: &mut Vec<u8>, d: &Decision) {
    out.extend_from_slice(&d.height.to_le_bytes());
    put_value(out, &d.value);
    put_certificate(out, &d.certificate);
}

fn get_decision(r: &mut Reader<'_>) -> Result<Decision, DecodeError> {
    Ok(Decision {
        height: r.u64()?,
        value: get_value(r)?,
        certificate: get_certificate(r)?,
    })
}

fn count(r: &mut Reader<'_>) -> Result<usize, DecodeError> {
    let n = r.u32()? as usize;
    if n > ITEMS_MAX {
        Err(DecodeError("too many items"))
    } else {
        Ok(n)
    }
}

/// Encode a consensus message for the wire.
pub fn encode_message(m: &Message) -> Vec<u8> {
    let mut out = vec![VERSION];
    match m {
        Message::Proposal(p) => {
            out.push(1);
            out.extend_from_slice(&p.height.to_le_bytes());
            out.extend_from_slice(&p.view.to_le_bytes());
            put_value(&mut out, &p.value);
            out.extend_from_slice(&(p.justification.len() as u32).to_le_bytes());
            for vc in &p.justification {
                put_view_change(&mut out, vc);
            }
            out.extend_from_slice(&p.signer.0);
            out.extend_from_slice(&p.signature.0);
        }
        Message::Vote(v) => {
            out.push(2);
            out.push(v.kind as u8);
            out.extend_from_slice(&v.height.to_le_bytes());
            out.extend_from_slice(&v.view.to_le_bytes());
            out.extend_from_slice(&v.digest);
            out.extend_from_slice(&v.signer.0);
            out.extend_from_slice(&v.signature.0);
        }
        Message::ViewChange(vc) => {
            out.push(3);
            put_view_change(&mut out, vc);
        }
        Message::SyncRequest { from } => {
            out.push(4);
            out.extend_from_slice(&from.to_le_bytes());
        }
        Message::SyncResponse(ds) => {
            out.push(5);
            out.extend_from_slice(&(ds.len() as u32).to_le_bytes());
            for d in ds {
                put_decision(&mut out, d);
            }
        }
    }
    out
}

/// Decode a consensus message from the wire. Never panics; signatures are not checked here.
pub fn decode_message(bytes: &[u8]) -> Result<Message, DecodeError> {
    let mut r = Reader(bytes);
    if r.u8()? != VERSION {
        return Err(DecodeError("unknown version"));
    }
    let m = match r.u8()? {
        1 => {
            let height = r.u64()?;
            let view = r.u32()?;
            let value = get_value(&mut r)?;
            let n = count(&mut r)?;
            let mut justification = Vec::with_capacity(n.min(64));
            for _ in 0..n {
                justification.push(get_view_change(&mut r)?);
            }
            Message::Proposal(Proposal {
                height,
                view,
                value,
                justification,
                signer: PublicKey(r.arr()?),
                signature: Signature(r.arr()?),
            })
        }
        2 => Message::Vote(Vote {
            kind: kind(r.u8()?)?,
            height: r.u64()?,
            view: r.u32()?,
            digest: r.arr()?,
            signer: PublicKey(r.arr()?),
            signature: Signature(r.arr()?),
        }),
        3 => Message::ViewChange(get_view_change(&mut r)?),
        4 => Message::SyncRequest { from: r.u64()? },
        5 => {
            let n = count(&mut r)?;
            let mut ds = Vec::with_capacity(n.min(64));
            for _ in 0..n {
                ds.push(get_decision(&mut r)?);
            }
            Message::SyncResponse(ds)
        }
        _ => return Err(DecodeError("unknown message tag")),
    };
    r.done()?;
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision() -> Decision {
        Decision {
            height: 9,
            value: b"result".to_vec(),
            certificate: Certificate {
                kind: Kind::Commit,
                height: 9,
                view: 2,
                digest: [4; 32],
                signatures: vec![(PublicKey([1; 32]), Signature([2; 64]))],
            },
        }
    }

    #[test]
    fn round_trip() {
        let d = decision();
        assert_eq!(decode_decision(&encode_decision(&d)).unwrap(), d);
        let p = Prepared {
            value: d.value.clone(),
            certificate: Certificate {
                kind: Kind::Prepare,
                ..d.certificate.clone()
            },
        };
        assert_eq!(decode_prepared(&encode_prepared(&p)).unwrap(), p);
    }

    #[test]
    fn messages_round_trip_and_truncations_fail() {
        let d = decision();
        let prepared = Prepared {
            value: b"v".to_vec(),
            certificate: Certificate {
                kind: Kind::Prepare,
                ..d.certificate.clone()
            },
        };
        let vc = ViewChange {
            height: 3,
            view: 2,
            prepared: Some(prepared),
            signer: PublicKey([7; 32]),
            signature: Signature([8; 64]),
        };
        let msgs = vec![
            Message::Vote(Vote {
                kind: Kind::Commit,
                height: 3,
                view: 1,
                digest: [5; 32],
                signer: PublicKey([1; 32]),
                signature: Signature([2; 64]),
            }),
            Message::ViewChange(vc.clone()),
            Message::Proposal(Proposal {
                height: 3,
                view: 2,
                value: b"x".to_vec(),
                justification: vec![vc],
                signer: PublicKey([3; 32]),
                signature: Signature([4; 64]),
            }),
            Message::SyncRequest { from: 12 },
            Message::SyncResponse(vec![d.clone(), d]),
        ];
        for m in msgs {
            let bytes = encode_message(&m);
            assert_eq!(decode_message(&bytes).unwrap(), m);
            for n in 0..bytes.len() {
                assert!(decode_message(&bytes[..n]).is_err());
            }
        }
        assert!(decode_message(&[VERSION, 99]).is_err());
        assert!(decode_message(&[]).is_err());
    }

    #[test]
    fn malformed_bytes_are_errors_not_panics() {
        let bytes = encode_decision(&decision());
        for n in 0..bytes.len() {
            assert!(decode_decision(&bytes[..n]).is_err());
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(decode_decision(&extra).is_err());
        let mut bad_kind = bytes;
        bad_kind[1 + 8 + 4 + 6] = 9;
        assert!(decode_decision(&bad_kind).is_err());
        let mut huge = vec![VERSION];
        huge.extend_from_slice(&9u64.to_le_bytes());
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            decode_decision(&huge).unwrap_err(),
            DecodeError("value too large")
        );
    }
}
