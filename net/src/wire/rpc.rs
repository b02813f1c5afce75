//! Request-response frames and DHT record keys.

use super::*;

/// What the DHT stores, each under `kind | sha256(value)`; values are signed envelopes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum RecordKind {
    /// A miner's signed submission.
    Submission = 1,
    /// A validator's signed evaluation batch.
    EvaluationBatch = 2,
    /// A signed consensus checkpoint.
    Checkpoint = 3,
}

impl RecordKind {
    /// The record key of a value of this kind with content hash `hash`.
    pub fn key(self, hash: &Hash32) -> Vec<u8> {
        let mut k = Vec::with_capacity(34);
        k.extend_from_slice(b"r");
        k.push(self as u8);
        k.extend_from_slice(hash);
        k
    }

    /// Split a record key into kind and hash.
    pub fn parse_key(key: &[u8]) -> Result<(RecordKind, Hash32), WireError> {
        let mut r = Reader::new(key, "record key");
        if r.u8()? != b'r' {
            return Err(WireError::Tag {
                what: "record key",
                tag: key[0],
            });
        }
        let kind = match r.u8()? {
            1 => RecordKind::Submission,
            2 => RecordKind::EvaluationBatch,
            3 => RecordKind::Checkpoint,
            tag => {
                return Err(WireError::Tag {
                    what: "record kind",
                    tag,
                });
            }
        };
        let hash = r.array()?;
        r.end()?;
        Ok((kind, hash))
    }

    /// A short label for metrics.
    pub const fn label(self) -> &'static str {
        match self {
            RecordKind::Submission => "submission",
            RecordKind::EvaluationBatch => "evaluation_batch",
            RecordKind::Checkpoint => "checkpoint",
        }
    }
}

/// A miner's answer from a validator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubmitAck {
    /// Accepted and gossiped under this id.
    Accepted(Hash32),
    /// Refused, with the reason.
    Rejected(String),
}

/// Request-response requests (`/platform/rpc/1`).
///
/// Layout: `version u8 | kind u8 | body`; kind 1 = hello (binding record), 2 = blob by
/// hash (32 bytes), 3 = submit (an envelope), 4 = the latest certified checkpoint (no body).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Request {
    Hello(Vec<u8>),
    Blob(Hash32),
    Submit(Vec<u8>),
    Checkpoint,
}

/// Request-response responses.
///
/// Layout: `version u8 | kind u8 | body`; kind 1 = hello (binding record), 2 = blob
/// (`found u8` then the bytes), 3 = submit ack (`0 | id [32]` or `1 | utf-8 reason`),
/// 4 = checkpoint (`found u8` then the application's bytes: an encoded consensus decision).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Response {
    Hello(Vec<u8>),
    Blob(Option<Vec<u8>>),
    Submit(SubmitAck),
    Checkpoint(Option<Vec<u8>>),
}

impl Request {
    pub fn encode(&self) -> Vec<u8> {
        let (kind, body): (u8, &[u8]) = match self {
            Request::Hello(b) => (1, b),
            Request::Blob(h) => (2, h),
            Request::Submit(b) => (3, b),
            Request::Checkpoint => (4, &[]),
        };
        let mut v = Vec::with_capacity(2 + body.len());
        v.extend_from_slice(&[WIRE_VERSION, kind]);
        v.extend_from_slice(body);
        v
    }

    pub fn decode(bytes: &[u8]) -> Result<Request, WireError> {
        let mut r = Reader::new(bytes, "request");
        r.version()?;
        let kind = r.u8()?;
        let rest = r.bytes.to_vec();
        match kind {
            1 => Ok(Request::Hello(rest)),
            2 => {
                let h = r.array()?;
                r.end()?;
                Ok(Request::Blob(h))
            }
            3 => Ok(Request::Submit(rest)),
            4 => {
                r.end()?;
                Ok(Request::Checkpoint)
            }
            tag => Err(WireError::Tag {
                what: "request",
                tag,
            }),
        }
    }

    pub fn label(&self) -> &'static str {
        match self {
            Request::Hello(_) => "hello",
            Request::Blob(_) => "blob",
            Request::Submit(_) => "submit",
            Request::Checkpoint => "checkpoint",
        }
    }
}

impl Response {
    pub fn encode(&self) -> Vec<u8> {
        let mut v = vec![WIRE_VERSION];
        match self {
            Response::Hello(b) => {
                v.push(1);
                v.extend_from_slice(b);
            }
            Response::Blob(b) | Response::Checkpoint(b) => {
                v.push(if matches!(self, Response::Blob(_)) {
                    2
                } else {
                    4
                });
                match b {
                    None => v.push(0),
                    Some(b) => {
                        v.push(1);
                        v.extend_from_slice(b);
                    }
                }
            }
            Response::Submit(ack) => {
                v.push(3);
                match ack {
                    SubmitAck::Accepted(id) => {
                        v.push(0);
                        v.extend_from_slice(id);
                    }
                    SubmitAck::Rejected(reason) => {
                        v.push(1);
                        v.extend_from_slice(reason.as_bytes());
                    }
                }
            }
        }
        v
    }

    pub fn decode(bytes: &[u8]) -> Result<Response, WireError> {
        let mut r = Reader::new(bytes, "response");
        r.version()?;
        match r.u8()? {
            1 => Ok(Response::Hello(r.bytes.to_vec())),
            2 => match r.u8()? {
                0 => {
                    r.end()?;
                    Ok(Response::Blob(None))
                }
                1 => Ok(Response::Blob(Some(r.bytes.to_vec()))),
                tag => Err(WireError::Tag { what: "blob", tag }),
            },
            3 => match r.u8()? {
                0 => {
                    let id = r.array()?;
                    r.end()?;
                    Ok(Response::Submit(SubmitAck::Accepted(id)))
                }
                1 => Ok(Response::Submit(SubmitAck::Rejected(
                    String::from_utf8_lossy(r.bytes).chars().take(256).collect(),
                ))),
                tag => Err(WireError::Tag { what: "ack", tag }),
            },
            4 => match r.u8()? {
                0 => {
                    r.end()?;
                    Ok(Response::Checkpoint(None))
                }
                1 => Ok(Response::Checkpoint(Some(r.bytes.to_vec()))),
                tag => Err(WireError::Tag {
                    what: "checkpoint",
                    tag,
                }),
            },
            tag => Err(WireError::Tag {
                what: "response",
                tag,
            }),
        }
    }
}
